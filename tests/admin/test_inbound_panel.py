"""The Inbound list and the handoff thread in the panel: emails that wait for a person
(held, unmatched) listed with their reason, discarded, attached to a lead or posted to their
thread once; the thread on the lead and handoff pages; the marketer's answer from the reply
box reaching the rep over SMTP. Emails come in through the one entry every channel uses
(service.inbound.receive), the answer leaves through a real RQ worker and a real SMTP
server, and one test drives the pages in Debian's chromium."""

from __future__ import annotations

from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import parseaddr

import pytest
from markupsafe import escape
from playwright.sync_api import expect

from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import Handoff, HandoffMessage, InboundEmail, OutboxEmail, User
from service.core.runtime import runtime
from service.inbound.receive import receive
from tests.admin.test_browser import (  # noqa: F401 - the browser fixture
    browser_page,
    log_in_page,
    shot,
)
from tests.admin.test_hardening import working_links
from tests.conftest import PASSWORD, csrf_token, log_in, run_worker
from tests.factories import promoted

SCRIPT = "<script>alert('xss')</script>"
ESCAPED = str(escape(SCRIPT))  # as Jinja writes it
REPLIES = {"inbound.reply_address": "reply@leads.example.com"}
ROLES = ("admin", "marketer", "sales_manager")


def arrive(raw: bytes) -> int:
    received = receive(raw, channel="imap", settings=runtime.settings,
                       secret=runtime.secret_key, now=utcnow())
    return received.email_id


def mail(*, sender: str, subject: str, text: str, in_reply_to: str = "",
         to: str = "sales@leads.example.com", number: int = 1) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = f"<panel-{number}@mail.example.net>"
    if in_reply_to:
        message["In-Reply-To"] = message["References"] = in_reply_to
    message.set_content(text)
    return message


@pytest.fixture
def world(make_app, rep, smtp):
    """A handoff emailed to its rep, then three emails: the rep's own reply (posted), a reply
    to the rep's handoff email from someone else (held) and one answering nothing
    (unmatched, with an attachment). Sender names, subjects and bodies carry a script."""
    app = make_app(**REPLIES)
    handoff = promoted(rep, "ada@example.com", at=utcnow(),
                       fields={"first_name": "Ada", "company": "Acme"})
    run_worker()
    sent = OutboxEmail.get(OutboxEmail.handoff == handoff.id, OutboxEmail.template == "rep_handoff")
    original = smtp.messages[0].get_body(("plain",)).get_content()
    posted = arrive(bytes(mail(sender=rep.email, subject=f"Re: Ada {SCRIPT}", number=1,
                               text=f"Rep here {SCRIPT}\nsecond line",
                               in_reply_to=sent.message_id)))
    held = arrive(bytes(mail(sender=f'"{SCRIPT} Mallory" <mallory@evil.example>',
                             subject=f"Re: handoff {SCRIPT}", number=2,
                             text=f"Give it to me {SCRIPT}\n\n> {original}",
                             in_reply_to=sent.message_id)))
    stray = mail(sender=f'"{SCRIPT} Stray" <stray@example.net>', subject=f"Hello {SCRIPT}",
                 text=f"Who reads this? {SCRIPT}", to="reply@leads.example.com", number=3)
    stray.add_attachment(b"%PDF-1.4 " + b"x" * 1200, maintype="application", subtype="pdf",
                         filename="quote.pdf")
    unmatched = arrive(bytes(stray))
    for role in ROLES:
        create_user(f"{role}@example.com", role=role, password=PASSWORD, now=utcnow())
    User.update(name="Mia Marketer").where(User.email == "marketer@example.com").execute()
    return {"app": app, "handoff": handoff, "posted": posted, "held": held,
            "unmatched": unmatched, "sent": sent}


def client_as(app, role: str = "marketer"):
    client = app.test_client()
    assert log_in(client, f"{role}@example.com").status_code == 302
    return client


def act(client, email_id: int, action: str, view: str = "inbound"):
    token = csrf_token(client.get("/admin/").text)
    return client.post(f"/admin/{view}/action/", data={
        "action": action, "rowid": [str(email_id)], "csrf_token": token}, follow_redirects=True)


def to_rep(messages: list) -> list:
    return [m for m in messages if parseaddr(m["To"])[1] == "riley.rep@example.com"]


def status(email_id: int) -> str:
    return InboundEmail.get_by_id(email_id).status


def test_the_list_shows_what_waits_for_a_person_and_all_on_request(world):
    assert (status(world["posted"]), status(world["held"]), status(world["unmatched"])) == (
        "posted", "held", "unmatched")
    client = client_as(world["app"])
    waiting = client.get("/admin/inbound/").text
    assert waiting.count('name="rowid"') == 2
    assert "mallory@evil.example" in waiting and "stray@example.net" in waiting
    assert "not by the rep of this thread" in waiting and "no reply token" in waiting
    assert "Show all received email" in waiting and "Rep here" not in waiting
    everything = client.get("/admin/inbound_all/").text
    assert everything.count('name="rowid"') == 3
    only_posted = client.get("/admin/inbound_all/?flt1_status_equals=posted").text
    assert only_posted.count('name="rowid"') == 1 and "riley.rep@example.com" in only_posted
    first = everything.index("stray@example.net")
    assert first < everything.index("mallory@evil.example"), "newest first"

    home = client.get("/admin/").text
    assert "<strong>2</strong> email(s) wait in Inbound" in home
    assert 'href="/admin/inbound/"' in home
    act(client, world["held"], "discard")
    act(client, world["unmatched"], "discard")
    assert "wait in Inbound" not in client.get("/admin/").text


def test_details_show_text_attachments_reason_and_the_raw_email(world):
    # The names and sizes as receive() notes them (the parser fills them in; set here so
    # that this test shows the page, whatever the parser's version).
    InboundEmail.update(attachments=[{"name": f"quote{SCRIPT}.pdf", "size": 1210,
                                      "content_type": "application/pdf"}]).where(
        InboundEmail.id == world["unmatched"]).execute()
    client = client_as(world["app"])
    page = client.get(f"/admin/inbound/details/?id={world['unmatched']}").text
    assert "Who reads this?" in page and f"quote{ESCAPED}.pdf" in page
    assert "application/pdf · 1210 bytes" in page and SCRIPT not in page
    assert "no reply token" in page
    raw = client.get(f"/admin/inbound/raw/{world['unmatched']}")
    assert raw.mimetype == "message/rfc822"
    assert raw.headers["Content-Disposition"].startswith("attachment")
    assert raw.data == bytes(InboundEmail.get_by_id(world["unmatched"]).raw)

    held = bytes(InboundEmail.get_by_id(world["held"]).raw)
    quoted = message_from_bytes(held, policy=email_policy.default).get_body(("plain",))
    assert working_links(world["app"], quoted.get_content()), "the reply quotes a live link"
    download = client.get(f"/admin/inbound/raw/{world['held']}").data
    parsed = message_from_bytes(download, policy=email_policy.default)
    text = parsed.get_body(("plain",)).get_content()
    assert "Give it to me" in text and "/h/(hidden-in-the-panel)" in text
    assert working_links(world["app"], text) == []
    assert parsed["Message-ID"] == "<panel-2@mail.example.net>"


def test_discard_and_attach_are_done_once(world):
    client = client_as(world["app"])
    first = act(client, world["held"], "discard")
    assert "1 email(s) discarded." in first.text and status(world["held"]) == "discarded"
    again = act(client, world["held"], "discard", view="inbound_all")
    assert "dealt with already" in again.text and status(world["held"]) == "discarded"
    assert InboundEmail.get_by_id(world["held"]).reviewed_by == "marketer@example.com"

    page = client.get(f"/admin/inbound/details/?id={world['unmatched']}")
    token = csrf_token(page.text)
    attach = f"/admin/inbound/attach/?ids={world['unmatched']}"
    nobody = client.post(attach, data={"lead": "nobody@example.com", "csrf_token": token})
    assert "no lead has the email or id nobody@example.com" in nobody.text
    assert status(world["unmatched"]) == "unmatched"
    done = client.post(attach, data={"lead": "ADA@example.com", "csrf_token": token},
                       follow_redirects=True)
    assert "1 email(s) attached to" in done.text
    row = InboundEmail.get_by_id(world["unmatched"])
    assert (row.status, row.lead_id) == ("attached", world["handoff"].lead_id)
    by_id = client.post(attach, data={"lead": str(row.lead_id), "csrf_token": token},
                        follow_redirects=True)
    assert "dealt with already" in by_id.text
    lead_page = client.get(f"/admin/lead/details/?id={row.lead_id}").text
    assert "Who reads this?" in lead_page


def test_posting_a_held_email_puts_it_in_the_thread(world):
    client = client_as(world["app"], "sales_manager")
    refused = act(client, world["unmatched"], "release")
    assert "only a held email can be posted" in refused.text
    assert status(world["unmatched"]) == "unmatched"
    done = act(client, world["held"], "release")
    assert "1 email(s) posted to its thread." in done.text
    assert status(world["held"]) not in ("held", "unmatched")
    bodies = [m.body for m in HandoffMessage.select().order_by(HandoffMessage.id)]
    assert len(bodies) == 2 and bodies[1].startswith("Give it to me")
    page = client.get(f"/admin/handoff/details/?id={world['handoff'].id}").text
    assert "Give it to me" in page and "mallory@evil.example" in page
    again = act(client, world["held"], "release")
    assert "only a held email can be posted" in again.text
    assert HandoffMessage.select().count() == 2


def test_the_thread_shows_on_the_lead_and_handoff_pages(world):
    handoff = world["handoff"]
    HandoffMessage.create(handoff=handoff.id, author="rep", author_address="riley.rep@example.com",
                          author_name="Riley Rep", body="Back on Monday.", at=utcnow(),
                          via="email", kind="out_of_office")
    client = client_as(world["app"])
    for path in (f"/admin/handoff/details/?id={handoff.id}",
                 f"/admin/lead/details/?id={handoff.lead_id}"):
        page = client.get(path).text
        assert f"Rep here {ESCAPED}\nsecond line" in page, path
        assert "via email" in page and "Riley Rep" in page, path
        assert "Back on Monday." in page, path
        assert page.count("Out of office (auto-reply)") == 1, "on the note alone"
        assert page.index("Rep here") < page.index("Out of office") < page.index("Back on")


def test_the_reply_box_emails_the_rep(world, smtp):
    handoff = world["handoff"]
    client = client_as(world["app"])
    page = client.get(f"/admin/handoff/details/?id={handoff.id}")
    token = csrf_token(page.text)
    path = f"/admin/handoff/answer/{handoff.id}"
    sent = client.post(path, data={"text": "They use SSO.\nAsk about Okta.",
                                   "csrf_token": token}, follow_redirects=True)
    assert "Sent to Riley Rep &lt;riley.rep@example.com&gt;" in sent.text
    assert "They use SSO.\nAsk about Okta." in sent.text and "via panel" in sent.text
    [message] = HandoffMessage.select().where(HandoffMessage.via == "panel")
    assert (message.author, message.author_address, message.author_name) == (
        "marketer", "marketer@example.com", "Mia Marketer")
    before = len(smtp.messages)
    run_worker()
    [email] = to_rep(smtp.messages[before:])
    assert "They use SSO." in email.get_body(("plain",)).get_content()

    empty = client.post(path, data={"text": "  ", "csrf_token": token}, follow_redirects=True)
    assert "write a message first" in empty.text
    long = client.post(path, data={"text": "x" * 20_001, "csrf_token": token},
                       follow_redirects=True)
    assert "a message is at most 20000 characters" in long.text
    forged = client.post(path, data={"text": "no token"})
    assert forged.status_code == 400
    assert HandoffMessage.select().where(HandoffMessage.via == "panel").count() == 1


@pytest.mark.parametrize("role", ROLES)
def test_every_panel_role_may_decide(world, role):
    client = client_as(world["app"], role)
    assert "1 email(s) discarded." in act(client, world["unmatched"], "discard").text


def test_who_may_not_act(world):
    app, held = world["app"], world["held"]
    anonymous = app.test_client()
    for path in ("/admin/inbound/", f"/admin/inbound/details/?id={held}",
                 f"/admin/inbound/raw/{held}", f"/admin/inbound/attach/?ids={held}"):
        answer = anonymous.get(path)
        assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"], path
    answer = anonymous.post("/admin/inbound/action/", data={"action": "discard",
                                                            "rowid": [str(held)]})
    assert answer.status_code in (302, 400)
    answer = anonymous.post(f"/admin/handoff/answer/{world['handoff'].id}", data={"text": "hi"})
    assert answer.status_code in (302, 400)

    client = client_as(app)
    token = csrf_token(client.get("/admin/").text)
    User.update(role="viewer").where(User.email == "marketer@example.com").execute()
    for path in ("/admin/inbound/", f"/admin/inbound/raw/{held}"):
        assert client.get(path).status_code == 403, path
    refused = client.post("/admin/inbound/action/", data={
        "action": "discard", "rowid": [str(held)], "csrf_token": token})
    assert refused.status_code == 403
    refused = client.post(f"/admin/inbound/attach/?ids={held}", data={
        "lead": "ada@example.com", "csrf_token": token})
    assert refused.status_code == 403
    refused = client.post(f"/admin/handoff/answer/{world['handoff'].id}", data={
        "text": "hi", "csrf_token": token})
    assert refused.status_code == 403
    no_token = client_as(app, "admin").post("/admin/inbound/action/", data={
        "action": "discard", "rowid": [str(held)]})
    assert no_token.status_code == 400
    assert status(held) == "held" and HandoffMessage.select().where(
        HandoffMessage.via == "panel").count() == 0


def test_what_came_in_is_text_on_every_page(world):
    client = client_as(world["app"], "admin")
    act(client, world["unmatched"], "discard")  # now on the all list, not the waiting one
    handoff = world["handoff"]
    pages = ["/admin/", "/admin/inbound/", "/admin/inbound_all/",
             f"/admin/inbound/details/?id={world['held']}",
             f"/admin/inbound_all/details/?id={world['unmatched']}",
             f"/admin/inbound_all/details/?id={world['posted']}",
             f"/admin/inbound/attach/?ids={world['held']}",
             f"/admin/lead/details/?id={handoff.lead_id}",
             f"/admin/handoff/details/?id={handoff.id}"]
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        assert SCRIPT not in page.text, path
    assert ESCAPED + " Mallory" in client.get("/admin/inbound/").text
    details = client.get(f"/admin/inbound/details/?id={world['held']}").text
    assert f"Give it to me {ESCAPED}" in details and f"Re: handoff {ESCAPED}" in details
    assert f"Rep here {ESCAPED}" in client.get(f"/admin/handoff/details/?id={handoff.id}").text
    csv = client.get("/admin/inbound_all/export/csv/")
    assert csv.status_code == 200 and f"{SCRIPT} Mallory <mallory@evil.example>" in csv.text


def test_in_a_browser_the_marketer_answers_and_reviews_inbound(world, smtp, live_server,
                                                                browser_page):  # noqa: F811
    page, handoff = browser_page, world["handoff"]
    log_in_page(page, live_server, "marketer@example.com")
    expect(page.locator("#inbound-waiting")).to_contain_text("2")

    page.goto(f"{live_server}/admin/handoff/details/?id={handoff.id}")
    expect(page.locator(".handoff-thread")).to_contain_text("Rep here")
    page.fill("#answer textarea", "Ada's team signed the NDA.\nCall after 3pm.")
    page.click("#answer button:has-text('Send')")
    expect(page.locator(".alert-success")).to_contain_text(
        "Sent to Riley Rep <riley.rep@example.com>")
    last = page.locator(".handoff-thread .card").last
    expect(last).to_contain_text("Ada's team signed the NDA.")
    expect(last).to_contain_text("via panel")
    shot(page, "handoff-thread")
    before = len(smtp.messages)
    run_worker()
    [email] = to_rep(smtp.messages[before:])
    assert "Call after 3pm." in email.get_body(("plain",)).get_content()

    page.goto(f"{live_server}/admin/inbound/")
    rows = page.locator("table.model-list tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("table.model-list")).to_contain_text(SCRIPT + " Mallory")
    shot(page, "inbound-list")
    page.goto(f"{live_server}/admin/inbound/details/?id={world['held']}")
    page.click("button:has-text('Post to its thread')")
    expect(page.locator(".alert-success")).to_contain_text("posted to its thread")
    page.goto(f"{live_server}/admin/handoff/details/?id={handoff.id}")
    expect(page.locator(".handoff-thread")).to_contain_text("Give it to me")
    assert Handoff.get_by_id(handoff.id).status == "pending"


def test_an_email_nested_too_deep_to_walk_still_downloads(world):
    nested = b"".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
                      for i in range(1200))
    raw = b"From: x@example.net\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + nested
    received = receive(raw, channel="imap", settings=runtime.settings,
                        secret=runtime.secret_key, now=utcnow())
    answer = client_as(world["app"]).get(f"/admin/inbound/raw/{received.email_id}")
    assert answer.status_code == 200 and answer.data.startswith(b"From: x@example.net")
