"""Delivery ids are remembered for intake.dedupe_window_days: a re-delivery inside the window
is dropped; the deliveries sweep then forgets older ids, in bounded chunks, and the same id
again is recorded as a new message (as Segment does after its window)."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from service.core.db import db
from service.core.models import Activity, Delivery
from service.intake import retention
from service.intake.keys import create_key
from tests.conftest import run_cli, run_worker
from tests.factories import statements_run
from workers import jobs


def track(client, write_key: str, message_id: str):
    response = client.post("/v1/track", json={
        "writeKey": write_key, "userId": "u-1", "event": "Trial Started",
        "messageId": message_id, "context": {"traits": {"email": "ada@example.com"}}})
    assert response.status_code == 200
    run_worker()


def trials() -> int:
    return Activity.select().where(Activity.type == "trial_signup").count()


def test_a_message_id_is_dropped_inside_the_window_and_recorded_again_after_it(app, now):
    write_key = create_key("write_key", "website", sources=["website"], actor="t", now=now)[1]
    client = app.test_client()
    with time_machine.travel(now, tick=False) as clock:
        track(client, write_key, "m-1")
        assert trials() == 1
        clock.shift(timedelta(days=6, hours=23))
        assert jobs.prune_deliveries() == 0
        track(client, write_key, "m-1")
        assert trials() == 1, "a re-delivery inside the window is dropped"
        clock.shift(timedelta(hours=2))
        assert jobs.prune_deliveries() == 1
        assert not Delivery.select().where(Delivery.delivery_id == "m-1").exists()
        track(client, write_key, "m-1")
        assert trials() == 2, "after the window the same id is a new message"
        track(client, write_key, "m-1")
        assert trials() == 2, "and is remembered again from then"


def test_only_rows_older_than_the_window_go_whatever_their_source(app, now):
    old, young = now - timedelta(days=8), now - timedelta(days=6)
    Delivery.insert_many([
        {"source": "website", "delivery_id": "old-1", "received_at": old},
        {"source": "email:mailgun", "delivery_id": "key:old", "received_at": old},
        {"source": "website", "delivery_id": "young-1", "received_at": young},
        {"source": "billing", "delivery_id": "young-2", "received_at": young},
    ]).execute()
    assert retention.prune_deliveries(window_days=7, now=now) == 2
    kept = sorted(Delivery.select(Delivery.delivery_id).tuples())
    assert kept == [("young-1",), ("young-2",)]


def test_expired_rows_are_deleted_in_bounded_chunks(app, now):
    Delivery.insert_many([{"source": "website", "delivery_id": f"m-{i}",
                           "received_at": now - timedelta(days=30, seconds=i)}
                          for i in range(25)]).execute()
    Delivery.create(source="website", delivery_id="fresh", received_at=now)
    deleted = []
    run = statements_run(lambda: deleted.append(
        retention.prune_deliveries(window_days=7, now=now, chunk=10)))
    statements = [sql for sql in run if sql.lstrip().upper().startswith("DELETE")]
    assert deleted == [25]
    assert len(statements) == 3, "25 rows in chunks of 10: 10, 10, 5"
    assert all("LIMIT" in sql.upper() for sql in statements), "each chunk is bounded"
    assert [row.delivery_id for row in Delivery.select()] == ["fresh"]


def test_the_sweep_is_scheduled_and_runs_by_name(app, settings_overrides, now):
    Delivery.create(source="website", delivery_id="m-old",
                    received_at=now - timedelta(days=400))
    result = run_cli(app, settings_overrides, "sweep", "--only", "deliveries")
    assert result.returncode == 0, result.stderr
    assert "1 delivery id(s) past the dedupe window forgotten" in result.stdout
    assert not Delivery.select().exists()


def test_the_index_the_prune_reads(app):
    indexes = {tuple(index.columns) for index in db.get_indexes("delivery")}
    assert ("received_at",) in indexes
