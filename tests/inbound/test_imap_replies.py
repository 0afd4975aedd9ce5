"""The reply loop through a real mailbox: the rep's handoff email (received over SMTP) is
answered into a real Dovecot, the worker's mailbox reader stores it on the handoff's thread
and moves it to the processed folder, the marketer gets it over SMTP, and the marketer's
answer from the panel reaches the rep. Read twice after a crash, it is posted once."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr

import time_machine

from service.core.models import HandoffMessage, InboundEmail
from tests.conftest import csrf_token, log_in, run_worker
from tests.factories import PROMOTER, promoted
from tests.inbound.test_mailbox import PROCESSED, deliver, held
from tests.inbound.test_replies import REPLIES, reply_to, to
from tests.nurture.test_nurture import FRIDAY_EVENING, SETTINGS
from workers.mailbox import Mailbox, receive_imap


def mailbox_app(make_app, imap):
    return make_app(**SETTINGS, **REPLIES, **{"inbound.imap_url": imap.url(),
                                              "inbound.imap_password": imap.password})


def test_a_reply_in_the_mailbox_reaches_the_marketer_and_the_answer_the_rep(
        make_app, imap, rep, smtp, marketer):
    from service.core.runtime import runtime
    app = mailbox_app(make_app, imap)
    with time_machine.travel(FRIDAY_EVENING, tick=False):
        handoff = promoted(rep, "ada@example.com", at=FRIDAY_EVENING, actor=marketer.email,
                           fields={"first_name": "Ada", "company": "Acme"})
        run_worker()
    [email] = to(smtp, rep.email)
    deliver(imap, reply_to(email, sender=f"Riley Rep <{rep.email}>",
                           text="Do they have budget this quarter?"))

    assert Mailbox(runtime.settings.inbound).poll_once(receive_imap) == 1
    run_worker()
    assert held(imap, "INBOX") == [] and len(held(imap, PROCESSED)) == 1
    [message] = HandoffMessage.select()
    assert (message.handoff_id, message.author, message.body) == (
        handoff.id, "rep", "Do they have budget this quarter?")
    [notice] = to(smtp, marketer.email)
    assert "Do they have budget this quarter?" in notice.get_body(("plain",)).get_content()

    with time_machine.travel(FRIDAY_EVENING + timedelta(minutes=30), tick=False):
        client = app.test_client()
        log_in(client, marketer.email)
        page = client.get(f"/admin/handoff/details/?id={handoff.id}")
        assert "Do they have budget this quarter?" in page.text
        sent = client.post(f"/admin/handoff/answer/{handoff.id}", follow_redirects=True,
                           data={"text": "Yes: 40k, Q1.", "csrf_token": csrf_token(page.text)})
        assert "Yes: 40k, Q1." in sent.text
        run_worker()
    answer = to(smtp, rep.email)[-1]
    assert "Yes: 40k, Q1." in answer.get_body(("plain",)).get_content()
    assert parseaddr(answer["Reply-To"])[1].startswith("reply+h")


def test_a_reply_read_again_after_a_crash_is_posted_once(make_app, imap, rep, smtp):
    from service.core.runtime import runtime
    mailbox_app(make_app, imap)
    with time_machine.travel(FRIDAY_EVENING, tick=False):
        promoted(rep, "ada@example.com", at=FRIDAY_EVENING)
        run_worker()
    [email] = to(smtp, rep.email)
    deliver(imap, reply_to(email, sender=rep.email, text="On it."))

    def crash_after_receiving(raw: bytes) -> None:
        receive_imap(raw)
        raise SystemError("worker killed before the move")

    Mailbox(runtime.settings.inbound).poll_once(crash_after_receiving)
    assert len(held(imap, "INBOX")) == 1 and InboundEmail.select().count() == 1  # not moved
    Mailbox(runtime.settings.inbound).poll_once(receive_imap)
    run_worker()
    assert held(imap, "INBOX") == [] and len(held(imap, PROCESSED)) == 1
    assert HandoffMessage.select().count() == 1 and InboundEmail.select().count() == 1
    assert len(to(smtp, PROMOTER)) == 1
