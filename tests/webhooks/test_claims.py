"""A sender's claim on a delivery: when it lapses (the sender died mid-attempt) the next
sender takes it over and that attempt counts as failed, for the schedule (the next goes
after its delay) and for the endpoint's health; and a sender that outlived its claim
records nothing over the outcome of the one that took it over."""

from __future__ import annotations

import threading
from datetime import timedelta

import time_machine

from service.accounts.users import create_user
from service.core import db
from service.core.db import utcnow
from service.core.models import OutboxEmail, WebhookDelivery, WebhookEndpoint
from service.core.runtime import runtime
from service.webhooks import sending
from tests.factories import promoted
from tests.webhooks.conftest import endpoint_to, sweep_webhooks


def dies_mid_attempt(delivery_id: int) -> None:
    """A sender claims the delivery and starts its POST, then its worker is killed: nothing
    else happens."""
    now = utcnow()
    sending.claim([delivery_id], now=now, claim_seconds=runtime.settings.outbound.claim_seconds)
    assert sending.started(delivery_id, now=now)
    assert WebhookDelivery.get_by_id(delivery_id).claimed_at is not None


def test_a_sender_dying_on_the_last_attempt_fails_the_delivery(app, rep, receiver):
    endpoint, _ = endpoint_to(receiver, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    [delivery] = WebhookDelivery.select()
    schedule = runtime.settings.outbound.retry_seconds
    WebhookDelivery.update(attempts=len(schedule) - 1).where(
        WebhookDelivery.id == delivery.id).execute()  # seven attempts failed before
    dies_mid_attempt(delivery.id)
    with time_machine.travel(utcnow() + timedelta(seconds=61), tick=True):
        taken_over_at = utcnow()
        sweep_webhooks()
        sweep_webhooks()
    found = WebhookDelivery.get_by_id(delivery.id)
    assert receiver.requests == [], "no ninth attempt"
    assert found.status == "failed" and found.attempts == len(schedule)
    assert found.claimed_at is None and "the sender stopped" in found.last_error
    failing_since = WebhookEndpoint.get_by_id(endpoint.id).failing_since
    assert failing_since is not None and failing_since - taken_over_at < timedelta(seconds=5)


def test_a_sender_dying_mid_schedule_counts_as_a_failed_attempt(app, rep, receiver):
    endpoint, _ = endpoint_to(receiver, event_types=["lead.mql"])
    receiver.status = 503
    promoted(rep, at=utcnow())
    [delivery] = WebhookDelivery.select()
    dies_mid_attempt(delivery.id)
    with time_machine.travel(utcnow() + timedelta(seconds=61), tick=True) as clock:
        sweep_webhooks()  # the first attempt charged: the second waits its 5 s
        clock.shift(timedelta(seconds=6))
        sweep_webhooks()
    found = WebhookDelivery.get_by_id(delivery.id)
    assert len(receiver.requests) == 1 and found.status == "pending"
    assert found.attempts == 2 and found.last_status_code == 503
    assert found.next_attempt_at - found.last_attempt_at == timedelta(
        seconds=runtime.settings.outbound.retry_seconds[2]), "the third attempt's delay"


def test_senders_dying_count_toward_disabling_the_endpoint(app, rep, receiver):
    endpoint, _ = endpoint_to(receiver, event_types=["lead.mql"])
    create_user("ann.admin@example.com", role="admin", password="correct horse battery",
                now=utcnow())
    WebhookEndpoint.update(failing_since=utcnow() - timedelta(days=5)).where(
        WebhookEndpoint.id == endpoint.id).execute()  # failing, all but this last moment
    promoted(rep, at=utcnow())
    [delivery] = WebhookDelivery.select()
    dies_mid_attempt(delivery.id)
    with time_machine.travel(utcnow() + timedelta(seconds=61), tick=True):
        sweep_webhooks()
    found = WebhookEndpoint.get_by_id(endpoint.id)
    assert not found.active and "the sender stopped" in found.disabled_reason
    assert receiver.requests == [], "held: its endpoint is disabled"
    assert WebhookDelivery.get_by_id(delivery.id).status == "pending"
    assert OutboxEmail.select().where(
        OutboxEmail.template == "webhook_endpoint_disabled").count() == 1


def test_a_sender_that_outlived_its_claim_records_nothing_over_the_new_sender(
        app, rep, receiver):
    endpoint, _ = endpoint_to(receiver, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    [delivery] = WebhookDelivery.select()
    release = receiver.hold = threading.Event()
    first_claim = utcnow()

    def first_sender():
        db.connect()
        try:
            sending.deliver([delivery.id], settings=runtime.settings, now=first_claim)
        finally:
            db.db.close()

    sender = threading.Thread(target=first_sender)
    sender.start()
    try:
        assert receiver.holding.wait(10), "the first sender never reached the receiver"
        lapsed = first_claim + timedelta(seconds=61)  # its claim lapsed meanwhile
        assert sending.deliver([delivery.id], settings=runtime.settings, now=lapsed) == 0
        later = lapsed + timedelta(seconds=5)  # the charged attempt's delay
        assert sending.deliver([delivery.id], settings=runtime.settings, now=later) == 1
        receiver.status = 500  # what the first sender hears, too late
    finally:
        release.set()
        sender.join(10)
    assert len(receiver.requests) == 2
    found = WebhookDelivery.get_by_id(delivery.id)
    assert found.status == "delivered" and found.last_status_code == 204
    assert found.delivered_at == later and found.last_error == ""
    assert found.attempts == 2 and found.claimed_at is None
    assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is None
