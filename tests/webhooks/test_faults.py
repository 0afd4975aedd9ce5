"""Faults while sending: Redis stopped in the middle of a burst, a worker SIGKILLed in the
middle of a POST. No event is lost; the one duplicate is the documented one (same
webhook-id)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import time_machine
from standardwebhooks import Webhook

from service import lifecycle
from service.core.db import utcnow
from service.core.models import Rep, WebhookDelivery, WebhookEvent
from service.core.runtime import runtime
from tests.conftest import Outage, kill_worker_while_held, run_worker
from tests.factories import promoted
from tests.webhooks.conftest import endpoint_to, sweep_webhooks


def test_redis_stopped_in_the_middle_of_a_burst_loses_no_event(make_app, receiver):
    outage = Outage(down=10, up=20)
    make_app(**{"redis.url": outage.url, "outbound.allow_private_urls": True})
    _, secret = endpoint_to(receiver)
    rep = Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    with time_machine.travel(utcnow(), tick=True) as clock:
        try:
            for i in range(30):
                outage.step(i)
                handoff = promoted(rep, f"lead{i}@example.com", at=utcnow())
                if i % 2:
                    lifecycle.accept(handoff.id, bant={"need": "clear"}, notes="",
                                     actor=rep.email, now=utcnow(), requires=[])
            run_worker()
            assert len(receiver.requests) < WebhookEvent.select().count(), \
                "those written while Redis was down wait for the sweep"
            clock.shift(timedelta(minutes=2))
            sweep_webhooks()
            sweep_webhooks()
        finally:
            outage.stop()
    logged = sorted(event.public_id for event in WebhookEvent.select())
    assert len(logged) == 30 * 2 + 15 * 2
    assert sorted(receiver.ids()) == logged, "every event exactly once"
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
    assert WebhookDelivery.select().where(WebhookDelivery.status != "delivered").count() == 0


def test_worker_killed_in_the_middle_of_a_post_resends_with_the_same_id(
        make_app, receiver, settings_overrides):
    settings = {**settings_overrides, "outbound.allow_private_urls": True}
    app = make_app(**{"outbound.allow_private_urls": True})
    _, secret = endpoint_to(receiver)
    rep = Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    promoted(rep, at=utcnow())  # lead.created and lead.mql
    kill_worker_while_held(app, settings, receiver)
    held = receiver.requests[0].headers["webhook-id"]
    assert WebhookDelivery.select().where(WebhookDelivery.status == "delivered").count() == 0
    with time_machine.travel(utcnow() + timedelta(seconds=30), tick=True):
        sweep_webhooks()
    assert receiver.ids().count(held) == 1, "a live claim is not taken over"
    with time_machine.travel(utcnow() + timedelta(seconds=61), tick=True) as clock:
        sweep_webhooks()  # the attempt it had started counts: the next goes 5 s later
        clock.shift(timedelta(seconds=6))
        sweep_webhooks()
    counts = Counter(receiver.ids())
    assert set(counts) == {event.public_id for event in WebhookEvent.select()}
    assert counts[held] == 2 and max(counts.values()) <= 2
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
    rows = list(WebhookDelivery.select())
    assert {row.status for row in rows} == {"delivered"}
    assert max(row.attempts for row in rows) == 2
    assert runtime.queue.count == 0
