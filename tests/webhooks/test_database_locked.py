"""The database locked while a sender records what an endpoint answered: the outcome cannot
be written, the delivery stays claimed, and once the claim lapses (and the attempt's delay
in the schedule has passed) it goes again with the same webhook-id (the one documented
duplicate). Nothing is lost."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import time_machine

from service.core import db
from service.core.db import utcnow
from service.core.models import WebhookDelivery
from service.core.runtime import runtime
from service.core.statuses import WebhookStatus
from service.webhooks import sending
from tests.factories import new_lead
from tests.webhooks.conftest import endpoint_to, sweep_webhooks


def lock_deliveries():
    """Another connection holds the write lock (SQLite) or locks the delivery table
    (PostgreSQL); returns the function that lets go."""
    url = runtime.settings.database.url
    if url.startswith("postgres"):
        import psycopg2

        holder = psycopg2.connect(url)
        holder.cursor().execute("LOCK TABLE webhook_delivery IN ACCESS EXCLUSIVE MODE")
    else:
        holder = sqlite3.connect(Path(runtime.settings.data_dir) / "leadbridge.db",
                                 isolation_level=None, timeout=1)
        holder.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        holder.rollback()
        holder.close()
    return release


def test_a_locked_database_while_recording_loses_nothing(app, receiver, caplog):
    endpoint_to(receiver)
    new_lead("ada@example.com", at=utcnow())
    [delivery] = WebhookDelivery.select()
    answer = receiver.hold = threading.Event()
    raised = []

    def send() -> None:
        db.connect()
        try:
            sending.deliver([delivery.id], settings=runtime.settings, now=utcnow())
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            raised.append(exc)
        finally:
            db.db.close()

    sender = threading.Thread(target=send)
    sender.start()
    assert receiver.holding.wait(10)
    release = lock_deliveries()
    answer.set()
    sender.join(30)
    release()
    assert not sender.is_alive()
    assert not raised, "one delivery's fault is not the job's"
    assert "its attempt could not be recorded" in caplog.text, "the outcome was not written"
    held = WebhookDelivery.get_by_id(delivery.id)
    assert (held.status, held.claimed_at is not None) == (WebhookStatus.PENDING, True)
    with time_machine.travel(utcnow() + timedelta(seconds=30), tick=False):
        sweep_webhooks()
        assert len(receiver.requests) == 1, "not before the claim lapses"
    lapsed = timedelta(seconds=runtime.settings.outbound.claim_seconds + 1)
    with time_machine.travel(utcnow() + lapsed, tick=False):
        sweep_webhooks()
    with time_machine.travel(utcnow() + lapsed + timedelta(seconds=5), tick=False):
        sweep_webhooks()
    assert WebhookDelivery.get_by_id(delivery.id).status == WebhookStatus.DELIVERED
    ids = receiver.ids()
    assert len(ids) == 2 and ids[0] == ids[1], "sent again, with the same webhook-id"
