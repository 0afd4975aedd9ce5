"""Faults: Redis stopped in the middle of intake and promotions, the database locked, a
worker killed in the middle of a send. Nothing accepted is lost; nothing is sent twice."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import time_machine

from service.core.db import db, utcnow
from service.core.models import Activity, Handoff, InboundEvent, Lead, OutboxEmail, Rep
from service.core.runtime import runtime
from service.handoffs.actions import promote_lead
from service.intake.keys import create_key
from tests.conftest import Outage, kill_worker_while_held, run_worker
from tests.mail.test_outbox import promote_many, sweep_now
from tests.web.test_tracking import basic
from workers import recorder

ROOT = Path(__file__).resolve().parents[2]


def track(client, key: str, i: int):
    return client.post("/v1/track", headers=basic(key), json={
        "userId": f"u-{i}", "event": "Trial Started", "messageId": f"m-{i}",
        "context": {"traits": {"email": f"lead{i}@example.com"}}})


def test_redis_stopped_in_the_middle_of_intake_and_promotions(make_app, smtp):
    outage = Outage(down=60, up=140)
    app = make_app(**{"redis.url": outage.url})
    key = create_key("write_key", "website", sources=["website"], actor="t", now=utcnow())[1]
    rep = Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    client, statuses = app.test_client(), []
    with time_machine.travel(utcnow(), tick=True) as clock:
        for i in range(200):
            outage.step(i)
            statuses.append(track(client, key, i).status_code)
            if i % 10 == 9:
                recorder.drain()  # needs only the database: works with Redis stopped
                lead = Lead.get(Lead.email == f"lead{i}@example.com")
                promote_lead(lead.id, rep_id=rep.id, note="", actor="mia@example.com",
                             settings=runtime.settings, now=utcnow())
        try:
            run_worker()
            clock.shift(timedelta(minutes=2))
            sweep_now()
            sweep_now()
        finally:
            outage.stop()
    assert statuses == [200] * 200 and InboundEvent.select().count() == 0
    assert Activity.select().count() == 200 and Handoff.select().count() == 20
    rows = list(OutboxEmail.select())
    assert len(rows) == 20 and all(row.sent_at for row in rows)
    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(r.message_id for r in rows)


def hold_database_lock(app):
    """Another connection takes the write lock (SQLite) or locks the intake tables
    (PostgreSQL); returns the function that lets go."""
    url = runtime.settings.database.url
    if url.startswith("postgres"):
        import psycopg2

        holder = psycopg2.connect(url)
        holder.cursor().execute(
            "LOCK TABLE lead, activity, delivery, inbound_event IN ACCESS EXCLUSIVE MODE")
    else:
        path = Path(runtime.settings.data_dir) / "leadbridge.db"
        holder = sqlite3.connect(path, isolation_level=None, timeout=1)
        holder.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        holder.rollback()
        holder.close()
    return release


def test_database_locked_for_10_seconds_answers_503_then_stores_once(app):
    key = create_key("write_key", "website", sources=["website"], actor="t", now=utcnow())[1]
    release = hold_database_lock(app)
    answers = {}

    def send(i: int) -> None:
        answers[i] = track(app.test_client(), key, i)

    def form() -> None:
        answers["form"] = app.test_client().post("/f/contact", data={"email": "f@example.com"})

    started = time.monotonic()
    early = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    early.append(threading.Thread(target=form))
    late = [threading.Thread(target=send, args=(i,)) for i in (3, 4)]
    for thread in early:
        thread.start()
    time.sleep(6.5)
    for thread in late:  # these wait 3.5 s: the lock goes before their 5 s are up
        thread.start()
    time.sleep(max(0.0, started + 10 - time.monotonic()))
    release()
    for thread in early + late:
        thread.join()
    assert time.monotonic() - started >= 10
    for name in (0, 1, 2, "form"):
        assert answers[name].status_code == 503 and answers[name].headers["Retry-After"] == "5"
    assert answers[0].json["error"]["code"] == "unavailable"
    assert "nothing was stored" in answers["form"].text
    assert [answers[i].status_code for i in (3, 4)] == [200, 200]
    recorder.drain()
    assert Activity.select().count() == 2 and Lead.select().count() == 2

    again = [track(app.test_client(), key, i).status_code for i in (0, 1, 2, 3, 4, 0)]
    assert again == [200] * 6
    recorder.drain()
    assert Activity.select().count() == 5, "each event once, though sent again"


def test_a_database_error_that_is_not_a_lock_is_a_500_not_a_503(app):
    key = create_key("write_key", "website", sources=["website"], actor="t", now=utcnow())[1]
    db.execute_sql("DROP TABLE inbound_event")
    app.config["TESTING"] = False  # answer as in production instead of raising into the test
    response = track(app.test_client(), key, 1)
    assert response.status_code == 500 and "Retry-After" not in response.headers


def test_worker_killed_in_the_middle_of_a_send(make_app, smtp, settings_overrides):
    """A worker process is SIGKILLed while the SMTP server holds its message (and then
    drops it); the sweep sends it again once the claim lapses: delivered exactly once."""
    app = make_app(**{"outbox.claim_seconds": 61})
    [row] = promote_many(app, 1)
    kill_worker_while_held(app, {**settings_overrides, "outbox.claim_seconds": 61}, smtp)
    killed = OutboxEmail.get_by_id(row.id)
    assert killed.sent_at is None and killed.claimed_at is not None
    with time_machine.travel(utcnow() + timedelta(seconds=62), tick=True):
        sweep_now()
    sent = OutboxEmail.get_by_id(row.id)
    assert sent.sent_at is not None and sent.attempts == 2
    assert [m["Message-ID"] for m in smtp.messages] == [row.message_id]
    assert runtime.queue.count == 0


def test_redis_flushed_with_jobs_queued_is_rebuilt_from_the_database(app, smtp):
    with time_machine.travel(utcnow(), tick=True) as clock:
        promote_many(app, 3)
        assert runtime.queue.count == 3
        runtime.redis.flushall()
        assert runtime.queue.count == 0
        clock.shift(timedelta(minutes=2))
        sweep_now()
        sweep_now()
    rows = list(OutboxEmail.select())
    assert len(rows) == 3 and all(row.sent_at for row in rows)
    assert sorted(m["Message-ID"] for m in smtp.messages) == sorted(r.message_id for r in rows)
