"""Replies through the one entry every channel uses: a rep's reply goes on the handoff's
thread and reaches the marketer over SMTP, the marketer's answer (panel or email) reaches
the rep; a prospect's reply ends the sequence; auto-replies, delivery reports, spoofed
senders and bad tokens are kept, never posted. Emails received over real SMTP, jobs run by a
real RQ worker, the clock moved by time-machine."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import parseaddr

import pytest
import time_machine

from service.core.models import (
    Activity,
    Enrollment,
    Handoff,
    HandoffMessage,
    InboundEmail,
    Lead,
    WebhookEvent,
)
from service.core.runtime import runtime
from service.handoffs import thread
from service.handoffs.actions import reject_handoff
from service.inbound.receive import receive
from service.leads.scoring import Policy
from service.nurture.suppression import is_suppressed
from tests.conftest import run_worker
from tests.factories import PROMOTER, promoted
from tests.nurture.test_nurture import FRIDAY_EVENING, SETTINGS, nurture_mail, sweep

REPLIES = {"inbound.reply_address": "reply@leads.example.com"}
FIRST_STEP = FRIDAY_EVENING + timedelta(days=5, hours=-9)  # Wednesday 09:00 London


def reply_to(original, *, sender: str, text: str, headers: dict | None = None,
             to: str | None = None) -> bytes:
    """A reply as a mail client writes it: to the Reply-To, threaded on the Message-ID."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to or original["Reply-To"]
    message["Subject"] = "Re: " + original["Subject"]
    message["Message-ID"] = f"<{abs(hash((sender, text)))}@mail.example.net>"
    message["In-Reply-To"] = original["Message-ID"]
    message["References"] = original["Message-ID"]
    for name, value in (headers or {}).items():
        message[name] = value
    quoted = "\n".join("> " + line for line in str(original.get_body(("plain",))
                                                     .get_content()).splitlines())
    message.set_content(f"{text}\n\nOn Mon, 23 Nov 2026 at 09:00, Leadbridge wrote:\n{quoted}\n")
    return bytes(message)


def arrive(raw: bytes, **options):
    return receive(raw, channel="imap", settings=runtime.settings, secret=runtime.secret_key,
                   now=options.pop("now", None) or FRIDAY_EVENING, **options)


def to(smtp, address: str) -> list:
    return [m for m in smtp.messages if parseaddr(m["To"])[1] == address]


def handoff_email(make_app, rep, smtp, **settings):
    make_app(**SETTINGS, **REPLIES, **settings)
    with time_machine.travel(FRIDAY_EVENING, tick=False):
        handoff = promoted(rep, "ada@example.com", at=FRIDAY_EVENING,
                           fields={"first_name": "Ada", "company": "Acme"})
        run_worker()
    [email] = to(smtp, rep.email)
    return handoff, email


def test_a_reps_reply_reaches_the_marketer_and_the_answer_reaches_the_rep(make_app, rep,
                                                                          smtp):
    handoff, email = handoff_email(make_app, rep, smtp)
    name, address = parseaddr(email["Reply-To"])
    assert address.startswith("reply+h") and address.endswith("@leads.example.com")
    lead = Lead.get_by_id(handoff.lead_id)
    assert lead.public_id.lower() not in address and "ada" not in address  # no lead in it

    with time_machine.travel(FRIDAY_EVENING + timedelta(minutes=5), tick=False):
        received = arrive(reply_to(email, sender="Riley Rep <Riley.Rep@Example.com>",
                                   text="Is this the Acme with 500 seats?"))
        run_worker()
    assert received.status == "posted"
    [message] = HandoffMessage.select()
    assert (message.author, message.via, message.body) == ("rep", "email",
                                                           "Is this the Acme with 500 seats?")
    [notice] = to(smtp, PROMOTER)
    assert "Is this the Acme with 500 seats?" in notice.get_body(("plain",)).get_content()
    assert "On Mon, 23 Nov" not in notice.get_body(("plain",)).get_content()

    with time_machine.travel(FRIDAY_EVENING + timedelta(minutes=9), tick=False):
        assert arrive(reply_to(notice, sender=PROMOTER, text="Yes, the 500-seat one.")).status \
            == "posted"
        thread.answer(handoff.id, address=PROMOTER, name="Mia", text="And they use SSO.",
                      settings=runtime.settings, now=FRIDAY_EVENING + timedelta(minutes=10))
        run_worker()
    answers = to(smtp, rep.email)[1:]
    assert [a.get_body(("plain",)).get_content().count(text) for a, text in zip(
        answers, ["Yes, the 500-seat one.", "And they use SSO."], strict=True)] == [1, 1]
    assert all(parseaddr(a["Reply-To"])[1].startswith("reply+h") for a in answers)
    assert [(m.author, m.via) for m in thread.messages([handoff.id])] == [
        ("rep", "email"), ("marketer", "email"), ("marketer", "panel")]


def test_the_same_reply_twice_is_posted_once(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    raw = reply_to(email, sender=rep.email, text="Calling them now.")
    first, again = arrive(raw), arrive(raw)
    assert (first.status, again.duplicate, again.email_id) == ("posted", True, first.email_id)
    assert HandoffMessage.select().count() == 1 and InboundEmail.select().count() == 1


def test_a_reply_from_another_sender_is_held_not_posted(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    received = arrive(reply_to(email, sender="mallory@evil.example", text="Reassign it to me"))
    assert received.status == "held"
    held = InboundEmail.get_by_id(received.email_id)
    assert "mallory@evil.example" in held.reason and rep.email in held.reason
    assert HandoffMessage.select().count() == 0


def test_a_failed_sender_check_holds_even_the_right_address(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    received = arrive(reply_to(email, sender=rep.email, text="ok"), authentication="dmarc=fail")
    assert received.status == "held" and HandoffMessage.select().count() == 0


def test_a_changed_or_expired_token_matches_nothing(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    address = parseaddr(email["Reply-To"])[1]
    local, _, domain = address.partition("@")
    body, _, mac = local.rpartition("-")
    other_thread = body.replace("+h", "+h1", 1)
    for forged in (f"{body}-{mac[:-1]}{'a' if mac[-1] != 'a' else 'b'}@{domain}",
                   f"{other_thread}-{mac}@{domain}"):
        raw = reply_to(email, sender=rep.email, text=f"via {forged}", to=forged)
        raw = raw.replace(b"In-Reply-To", b"X-Was-In-Reply-To").replace(b"References",
                                                                          b"X-Was-References")
        received = arrive(raw)
        assert received.status == "unmatched"
        assert InboundEmail.get_by_id(received.email_id).reason == "reply token does not verify"
    late = FRIDAY_EVENING + timedelta(days=181)
    raw = reply_to(email, sender=rep.email, text="Sorry, late").replace(
        b"In-Reply-To", b"X-Was-In-Reply-To").replace(b"References", b"X-Was-References")
    received = arrive(raw, now=late)
    assert received.status == "unmatched"
    assert "older than 180 days" in InboundEmail.get_by_id(received.email_id).reason
    assert HandoffMessage.select().count() == 0


def test_without_a_token_the_in_reply_to_header_finds_the_thread(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    received = arrive(reply_to(email, sender=rep.email, text="Found it",
                               to="sales-inbox@leads.example.com"))
    assert received.status == "posted"
    assert HandoffMessage.get().body == "Found it"


def test_mail_answering_nothing_is_kept_unmatched(make_app, rep, smtp):
    make_app(**REPLIES)
    message = EmailMessage()
    message["From"], message["Subject"] = "x@example.net", "Hi"
    message["To"] = "reply@leads.example.com"
    message.set_content("Hello?")
    received = arrive(bytes(message))
    row = InboundEmail.get_by_id(received.email_id)
    assert (row.status, row.text) == ("unmatched", "Hello?")
    assert "no reply token" in row.reason


def test_a_reps_out_of_office_is_noted_and_the_sla_runs_on(make_app, rep, smtp):
    handoff, email = handoff_email(make_app, rep, smtp)
    due = Handoff.get_by_id(handoff.id).due_at
    raw = reply_to(email, sender=rep.email, text="I am out until Monday.",
                   headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"})
    received = arrive(raw.replace(b"Subject: Re:", b"Subject: Out of Office: Re:"))
    run_worker()
    assert received.status == "noted"
    [note] = HandoffMessage.select()
    assert note.kind == "out_of_office" and "out until Monday" in note.body
    after = Handoff.get_by_id(handoff.id)
    assert (after.status, after.due_at) == ("pending", due)
    assert to(smtp, PROMOTER) == []


def enrolled_step(make_app, rep, smtp):
    make_app(**SETTINGS, **REPLIES)
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        handoff = promoted(rep, "ada@example.com", at=FRIDAY_EVENING,
                           fields={"first_name": "Ada"})
        lead = Lead.get_by_id(handoff.lead_id)
        reject_handoff(handoff.id, reason="later", notes="", actor=rep.email,
                       settings=runtime.settings, now=FRIDAY_EVENING)
        run_worker()
        clock.move_to(FIRST_STEP)
        sweep()
    [step] = nurture_mail(smtp)
    return lead, step


def test_a_prospects_reply_stops_the_sequence_and_reaches_the_owner(make_app, rep, smtp):
    lead, step = enrolled_step(make_app, rep, smtp)
    assert parseaddr(step["Reply-To"])[1].startswith("reply+e")
    policy = Policy.from_settings(runtime.settings)
    before = policy.score(Lead.get_by_id(lead.id).score_log, FIRST_STEP)
    with time_machine.travel(FIRST_STEP + timedelta(hours=2), tick=False) as clock:
        received = arrive(reply_to(step, sender="ada@example.com",
                                   text="Can we talk next week?"),
                          now=FIRST_STEP + timedelta(hours=2))
        run_worker()
        assert received.status == "replied"
        [activity] = Activity.select().where(Activity.type == "email_reply")
        assert activity.lead_id == lead.id
        after = policy.score(Lead.get_by_id(lead.id).score_log, FIRST_STEP)
        assert after >= before + 29  # email_reply = 30 points
        enrollment = Enrollment.get(Enrollment.lead == lead.id)
        assert (enrollment.status, enrollment.stop_reason) == ("stopped", "replied")
        assert Lead.get_by_id(lead.id).re_engaged_at is not None
        assert [e.type for e in WebhookEvent.select().where(
            WebhookEvent.type == "lead.reengaged")] == ["lead.reengaged"]
        [notice] = [m for m in to(smtp, rep.email) if "replied" in m["Subject"]]
        assert "Can we talk next week?" in notice.get_body(("plain",)).get_content()
        assert parseaddr(notice["Reply-To"])[1] == "ada@example.com"
        clock.move_to(FIRST_STEP + timedelta(days=30))
        sweep()
    assert len(nurture_mail(smtp)) == 1, "no step after the reply"


def test_a_prospects_out_of_office_leaves_the_sequence_running(make_app, rep, smtp):
    lead, step = enrolled_step(make_app, rep, smtp)
    raw = reply_to(step, sender="ada@example.com", text="Away",
                   headers={"Auto-Submitted": "auto-replied"})
    assert arrive(raw, now=FIRST_STEP).status == "noted"
    assert Enrollment.get(Enrollment.lead == lead.id).status == "active"


def test_a_delivery_report_for_our_email_suppresses_the_address(make_app, rep, smtp):
    lead, step = enrolled_step(make_app, rep, smtp)
    received = arrive(_dsn(step["Message-ID"]), now=FIRST_STEP)
    assert received.status == "bounced", InboundEmail.get_by_id(received.email_id).reason
    assert is_suppressed("ada@example.com")


def _dsn(message_id: str) -> bytes:
    boundary = "dsn-boundary"
    return (f"From: MAILER-DAEMON@mx.example.net\r\nTo: reply@leads.example.com\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: <dsn-1@mx.example.net>\r\n"
            f"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"'
            f"\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nI could not deliver it."
            f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; ada@example.com"
            f"\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--{boundary}\r\n"
            f"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: {message_id}\r\n"
            f"To: ada@example.com\r\n\r\n--{boundary}--\r\n").encode()


def test_a_held_email_is_attached_released_or_discarded_once(make_app, rep, smtp):
    from service.core.errors import IllegalTransition
    from service.inbound import review
    _, email = handoff_email(make_app, rep, smtp)
    held = arrive(reply_to(email, sender="riley@home.example", text="From my own address"))
    stray = arrive(reply_to(email, sender="x@example.net", text="?", to="reply@leads.example.com")
                   .replace(b"In-Reply-To", b"X-Was").replace(b"References", b"X-Were"))
    assert (held.status, stray.status) == ("held", "unmatched")
    status = review.release(held.email_id, actor=PROMOTER, settings=runtime.settings,
                            secret=runtime.secret_key, now=FRIDAY_EVENING)
    assert status == "posted" and HandoffMessage.get().body.startswith("From my own address")
    review.discard(stray.email_id, actor=PROMOTER, now=FRIDAY_EVENING)
    for again in (lambda: review.discard(stray.email_id, actor=PROMOTER, now=FRIDAY_EVENING),
                  lambda: review.release(held.email_id, actor=PROMOTER,
                                         settings=runtime.settings, secret=runtime.secret_key,
                                         now=FRIDAY_EVENING)):
        with pytest.raises(IllegalTransition):
            again()
    assert InboundEmail.get_by_id(stray.email_id).status == "discarded"
    assert HandoffMessage.select().count() == 1


def test_export_holds_and_erase_removes_the_leads_replies(make_app, rep, smtp, tmp_path):
    from service.leads.gdpr import erase_lead, export_lead
    lead, step = enrolled_step(make_app, rep, smtp)
    arrive(reply_to(step, sender="ada@example.com", text="Please call me"), now=FIRST_STEP)
    stray = EmailMessage()
    stray["From"], stray["To"], stray["Subject"] = "ada@example.com", "hi@leads.example.com", "?"
    stray.set_content("Also this")
    arrive(bytes(stray), now=FIRST_STEP)
    exported = export_lead(lead.id)
    assert sorted(e["status"] for e in exported["emails_received"]) == ["replied", "unmatched"]
    assert "Please call me" in exported["emails_received"][0]["raw"] + \
        exported["emails_received"][1]["raw"]
    erase_lead(lead.id, actor="dpo@example.com", data_dir=tmp_path, now=FIRST_STEP)
    assert InboundEmail.select().count() == 0


def test_an_auto_reply_from_another_address_is_noted_not_held(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    raw = reply_to(email, sender="assistant@example.com", text="Riley is away.",
                   headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"})
    received = arrive(raw)
    assert received.status == "noted"
    assert HandoffMessage.select().count() == 0  # only the rep's own out-of-office is shown
