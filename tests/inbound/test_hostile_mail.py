"""Received mail as an attacker writes it: a reply quoting working decision links, a
delivery report naming other people, a copied Message-ID, a forged sender a trusted server
flagged, an empty or list-borne reply, a flood; none of it reaches further than it should."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parseaddr

import time_machine

from service.core import links
from service.core.models import (
    Activity,
    HandoffMessage,
    InboundEmail,
    OutboxEmail,
    Rep,
    WebhookEvent,
)
from service.core.runtime import runtime
from service.handoffs import thread
from service.nurture.suppression import is_suppressed
from tests.conftest import run_worker
from tests.factories import PROMOTER
from tests.inbound.test_replies import (
    FIRST_STEP,
    _dsn,
    arrive,
    enrolled_step,
    handoff_email,
    reply_to,
    to,
)
from tests.nurture.test_nurture import FRIDAY_EVENING

WORKING_LINK = re.compile(r"/h/[A-Za-z0-9_.-]{40,}")


def test_decision_links_quoted_in_a_reply_never_reach_the_marketer(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    body = email.get_body(("plain",)).get_content()
    link = WORKING_LINK.search(body)[0]
    quoted = "\n".join("> " + line for line in body.splitlines())

    def written(text: str, number: int) -> bytes:
        message = EmailMessage()
        message["From"], message["To"] = rep.email, email["Reply-To"]
        message["Subject"], message["Message-ID"] = "Re: lead", f"<{number}@example.net>"
        message.set_content(text)
        return bytes(message)

    # no quote header anywhere: the quoted lines go wherever they are, a link in the
    # rep's own words is made unusable
    top = written(f"Sure, I'll take it. Copy: {link}\n\n{quoted}", 1)
    bottom = written(f"{quoted}\n\nSure, I'll take it.", 2)
    assert [arrive(raw).status for raw in (top, bottom)] == ["posted", "held"]
    run_worker()
    [message] = HandoffMessage.select()
    assert message.body == "Sure, I'll take it. Copy: /h/(link removed)"
    [notice] = to(smtp, PROMOTER)
    for text in (notice.get_body(("plain",)).get_content(),
                 notice.get_body(("html",)).get_content()):
        assert not WORKING_LINK.search(text) and "Sure, I'll take it." in text


def test_a_delivery_report_suppresses_only_the_address_that_email_went_to(make_app, rep,
                                                                          smtp):
    lead, step = enrolled_step(make_app, rep, smtp)
    forged = _dsn(step["Message-ID"]).replace(
        b"Final-Recipient: rfc822; ada@example.com",
        b"Final-Recipient: rfc822; victim@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"\r\nFinal-Recipient: rfc822; other@example.org")
    received = arrive(forged, now=FIRST_STEP)
    assert received.status == "noted"  # a report with no failed recipient of ours
    assert not is_suppressed("victim@example.org") and not is_suppressed("other@example.org")
    assert not is_suppressed("ada@example.com")


def test_another_email_under_a_copied_message_id_is_kept_too(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    first = reply_to(email, sender="mallory@evil.example", text="Mine now")
    genuine = first.replace(b"mallory@evil.example", rep.email.encode()).replace(
        b"Mine now", b"Calling them at noon")
    assert arrive(first).status == "held"
    received = arrive(genuine)
    assert (received.status, received.duplicate) == ("posted", False)
    assert HandoffMessage.get().body == "Calling them at noon"


def test_a_sender_the_trusted_server_failed_is_held(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp, **{"inbound.authserv_id": "mx.leads.example"})
    verdict = "mx.leads.example; spf=softfail smtp.mailfrom=corp.example; dmarc=fail"
    held = arrive(reply_to(email, sender=rep.email, text="Forged",
                           headers={"Authentication-Results": verdict}))
    assert held.status == "held"
    assert "spf=fail, dmarc=fail" in InboundEmail.get_by_id(held.email_id).reason
    # the same verdict written by anyone else's server is no verdict
    other = arrive(reply_to(email, sender=rep.email, text="Fine",
                            headers={"Authentication-Results": verdict.replace(
                                "mx.leads.example", "mx.attacker.example")}))
    assert other.status == "posted"


def test_a_rep_who_left_cannot_post(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    Rep.update(active=False).where(Rep.id == rep.id).execute()
    assert arrive(reply_to(email, sender=rep.email, text="Still here")).status == "held"


def test_an_empty_or_list_borne_reply_waits_for_a_person(make_app, rep, smtp):
    _, email = handoff_email(make_app, rep, smtp)
    empty = reply_to(email, sender=rep.email, text="")
    listed = reply_to(email, sender=rep.email, text="Through the sales list",
                      headers={"List-Id": "<sales.corp.example>"})
    assert [arrive(raw).status for raw in (empty, listed)] == ["held", "held"]
    assert HandoffMessage.select().count() == 0


def test_a_thread_emails_at_most_thirty_messages_an_hour(make_app, rep, smtp):
    handoff, _ = handoff_email(make_app, rep, smtp)
    for number in range(thread.EMAILS_PER_HOUR + 5):
        thread.answer(handoff.id, address=PROMOTER, name="Mia", text=f"ping {number}",
                      settings=runtime.settings, now=FRIDAY_EVENING)
    assert HandoffMessage.select().count() == thread.EMAILS_PER_HOUR + 5
    emailed = OutboxEmail.select().where(OutboxEmail.template == "handoff_message").count()
    assert emailed == thread.EMAILS_PER_HOUR


def test_a_flood_of_prospect_replies_scores_and_notifies_once_an_hour(make_app, rep, smtp):
    lead, step = enrolled_step(make_app, rep, smtp)
    with time_machine.travel(FIRST_STEP + timedelta(minutes=5), tick=False):
        for number in range(3):
            arrive(reply_to(step, sender="ada@example.com", text=f"Reply {number}"),
                   now=FIRST_STEP + timedelta(minutes=number))
        run_worker()
    assert InboundEmail.select().where(InboundEmail.status == "replied").count() == 3
    assert Activity.select().where(Activity.type == "email_reply").count() == 1
    assert len([m for m in to(smtp, rep.email) if "replied" in m["Subject"]]) == 1
    assert WebhookEvent.select().where(WebhookEvent.type == "lead.reengaged").count() == 1


def test_a_token_for_one_handoff_does_not_open_another(make_app, rep, smtp):
    handoff, email = handoff_email(make_app, rep, smtp)
    address = parseaddr(email["Reply-To"])[1]
    token = address.partition("+")[2].partition("@")[0]
    link = links.read_reply_token(runtime.secret_key, token, today=link_day(), max_days=180)
    assert (link.thread, link.thread_id, link.role) == ("handoff", handoff.id, "rep")
    as_marketer = token.replace("-r", "-m", 1)
    raw = reply_to(email, sender=PROMOTER, text="As the marketer",
                   to=address.replace(token, as_marketer)).replace(
        b"In-Reply-To", b"X-In-Reply-To").replace(b"References", b"X-References")
    assert arrive(raw).status == "unmatched"


def link_day() -> int:
    from datetime import date
    return (FRIDAY_EVENING.date() - date(1970, 1, 1)).days
