"""Sending a batch close to the wire: several SMTP connections per job, sent rows marked a
few at a time, and every email still sent once (or, after a worker is killed, again at
most for the few not yet marked)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from service.core import outbox
from service.core.db import transaction, utcnow
from service.core.models import Lead, OutboxEmail
from service.core.runtime import runtime
from service.mail import delivery
from service.mail.transport import IN_FLIGHT
from tests.conftest import Inbox, free_port, kill_worker_while_held, run_worker
from tests.factories import statements_run


class Counting(Inbox):
    """An Inbox that notes each message's connection, and can answer 451 or hold a DATA once
    `after` messages have been accepted."""

    def __init__(self):
        super().__init__()
        self.peers, self.after, self.later = [], None, ""

    async def handle_DATA(self, server, session, envelope):
        if self.after is not None and len(self.messages) >= self.after and self.later:
            return self.later
        if self.after is not None and len(self.messages) < self.after:
            hold, self.hold = self.hold, None  # held only once `after` have arrived
            try:
                return await self._accept(session, envelope, server)
            finally:
                self.hold = hold
        return await self._accept(session, envelope, server)

    async def _accept(self, session, envelope, server):
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            self.peers.append(session.peer)
        return answer

    def message_ids(self) -> list[str]:
        return [message["Message-ID"] for message in self.messages]


class OneConnection(SMTP):
    """A server that takes one connection at a time: any other is told 421 and closed."""

    open = 0

    async def _handle_client(self):
        if OneConnection.open >= 1:
            await self.push("421 4.7.0 Too many connections, try again later")
            self.transport.close()
            return
        OneConnection.open += 1
        try:
            await super()._handle_client()
        finally:
            OneConnection.open -= 1


class OneConnectionController(Controller):
    def factory(self):
        return OneConnection(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def smtp():
    inbox = Counting()
    inbox.restart(free_port())
    yield inbox
    inbox.controller.stop()


def prospects(count: int, first: int = 0) -> list[OutboxEmail]:
    """count nurture emails waiting in the outbox, as the nurture sweep writes them."""
    now = utcnow()
    with transaction():
        for i in range(first, first + count):
            lead = Lead.create(email=f"pat{i}@acme.com", first_name=f"Pat{i}", stage="nurture",
                               stage_changed_at=now, company="Acme")
            outbox.queue_email("nurture/guide", to_address=lead.email, to_name=lead.first_name,
                               lead_id=lead.id, now=now, to_prospect=True, step=0,
                               step_id="s1", context={"subject": "A guide for {{ lead.company }}",
                                                      "template_version": 1})
    return list(OutboxEmail.select().order_by(OutboxEmail.id))


def sent_once(smtp, rows: list[OutboxEmail]) -> None:
    assert sorted(smtp.message_ids()) == sorted(row.message_id for row in rows)
    for row in rows:
        row = OutboxEmail.get_by_id(row.id)
        assert row.sent_at is not None and row.failed_at is None and row.last_error == ""


@pytest.mark.parametrize("connections", [1, 4])
def test_a_batch_sends_every_row_once_and_keeps_what_went(make_app, smtp, connections):
    make_app(**{"mail.connections": connections})
    rows = prospects(23)  # more than delivery.MARK_EVERY, not a multiple of it
    run_worker()
    sent_once(smtp, rows)
    by_id = {message["Message-ID"]: message for message in smtp.messages}
    for row in OutboxEmail.select():
        received = by_id[row.message_id]
        assert row.subject == received["Subject"] == "A guide for Acme"
        assert row.body_text == received.get_body(("plain",)).get_content()
        assert row.body_html == received.get_body(("html",)).get_content()
        assert f"Hi {row.to_name}," in row.body_text
    if connections > 1:
        assert len(set(smtp.peers)) > 1, "the job sent over several connections"


def test_a_batch_reads_in_a_few_queries_whatever_its_size(app, smtp):
    def reads_to_send(count: int, first: int) -> int:
        rows = prospects(count, first)[-count:]
        run = statements_run(lambda: delivery.deliver(
            [row.id for row in rows], settings=runtime.settings, secret=app.secret_key,
            now=utcnow()))
        return sum(sql.lstrip().upper().startswith("SELECT") for sql in run)

    assert reads_to_send(2, 0) == reads_to_send(30, 100), "reads per batch, not per email"


@pytest.mark.parametrize("connections", [1, 3])
def test_a_refused_recipient_fails_only_its_row(make_app, smtp, connections):
    make_app(**{"mail.connections": connections})
    rows = prospects(12)
    smtp.refuse["pat5@acme.com"] = "550 5.1.1 No such user"
    run_worker()
    refused = OutboxEmail.get(OutboxEmail.to_address == "pat5@acme.com")
    assert refused.failed_at is not None and refused.sent_at is None
    assert refused.last_error.startswith("550 5.1.1")
    sent_once(smtp, [row for row in rows if row.id != refused.id])


@pytest.mark.parametrize("connections", [1, 3])
def test_a_451_mid_batch_leaves_the_unsent_for_retry_and_the_sent_marked(make_app, smtp,
                                                                         connections):
    make_app(**{"mail.connections": connections, "outbox.retry_seconds": [60]})
    rows = prospects(30)
    smtp.after, smtp.later = 13, "451 4.3.0 Try again later"
    with time_machine.travel(utcnow(), tick=True) as clock:
        run_worker()
        accepted = set(smtp.message_ids())
        assert len(accepted) == 13
        for row in OutboxEmail.select():
            if row.message_id in accepted:
                assert row.sent_at is not None
            else:
                assert row.sent_at is None and row.failed_at is None
                assert row.claimed_at is None and row.retry_at is not None
                assert row.last_error == "451 4.3.0 Try again later"
        smtp.after = None
        clock.shift(timedelta(seconds=61))
        run_worker()
    sent_once(smtp, rows)


def test_a_server_that_takes_one_connection_still_gets_everything(make_app, smtp):
    smtp.controller.stop()
    OneConnection.open = 0
    smtp.controller = OneConnectionController(smtp, hostname="127.0.0.1", port=smtp.port)
    smtp.controller.start()
    make_app(**{"mail.connections": 4})
    rows = prospects(20)
    run_worker()
    sent_once(smtp, rows)
    assert len(set(smtp.peers)) == 1


def test_no_connection_at_all_puts_the_whole_batch_back(make_app, smtp):
    smtp.controller.stop()  # connections are refused
    make_app(**{"mail.connections": 4})
    rows = prospects(6)
    run_worker()
    for row in OutboxEmail.select():
        assert row.sent_at is None and row.retry_at is not None and row.attempts == 1
        assert "Connection" in row.last_error
    assert len(rows) == 6 and smtp.messages == []
    smtp.restart(smtp.port)


@pytest.mark.parametrize("connections", [1, 3])
def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_at_most_the_unmarked(
        make_app, settings_overrides, smtp, connections):
    settings = {**settings_overrides, "mail.connections": connections}
    app = make_app(**{"mail.connections": connections})
    rows = prospects(40)
    smtp.after = 25  # accepted: 25; held: the next, until the worker is dead
    kill_worker_while_held(app, settings, smtp)
    time.sleep(0.5)  # a DATA the dead worker had finished writing is still being taken in
    accepted = set(smtp.message_ids())
    marked = {row.message_id for row in OutboxEmail.select()
              if row.sent_at is not None}
    assert len(accepted) >= 25 and marked <= accepted
    assert len(accepted - marked) <= delivery.MARK_EVERY + IN_FLIGHT * connections
    smtp.after = None
    with time_machine.travel(utcnow() + timedelta(minutes=3), tick=True):
        runtime.queue.enqueue("workers.jobs.sweep_outbox")
        run_worker()
        run_worker()
    ids = smtp.message_ids()
    assert set(ids) == {row.message_id for row in rows}, "nothing lost"
    again = len(ids) - len(set(ids))
    assert again == len(accepted - marked), "only the unmarked went twice"
    assert all(OutboxEmail.get_by_id(row.id).sent_at for row in rows)
