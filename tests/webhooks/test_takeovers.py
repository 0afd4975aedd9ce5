"""Taking over a lapsed claim: only an attempt its dead sender had started (it may have
reached the endpoint) counts as failed, and that delivery waits its turn in the schedule;
one the dead sender never reached is sent as if nothing happened, its attempts untouched,
however often senders die before reaching it."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from service.core.db import utcnow
from service.core.models import Rep, WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.core.runtime import runtime
from service.webhooks import sending
from tests.conftest import kill_worker_while_held
from tests.factories import promoted
from tests.webhooks.conftest import endpoint_to, sweep_webhooks

SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]


def claimed_and_died(delivery_id: int, *, reached: bool) -> None:
    """A sender claims the delivery (and, if `reached`, starts its POST), then is killed."""
    now = utcnow()
    sending.claim([delivery_id], now=now, claim_seconds=runtime.settings.outbound.claim_seconds)
    if reached:
        assert sending.started(delivery_id, now=now)


def test_a_worker_killed_mid_post_charges_only_the_delivery_it_had_reached(
        make_app, receiver, settings_overrides):
    """One job holds lead.created and lead.mql; it is SIGKILLed while POSTing the first.
    The first is charged a failed attempt and goes again after the schedule's 5 s; the
    second, never reached, goes at the takeover as a first attempt."""
    settings = {**settings_overrides, "outbound.allow_private_urls": True}
    app = make_app(**{"outbound.allow_private_urls": True})
    endpoint, _ = endpoint_to(receiver)
    promoted(Rep.create(email="jordan.rep@example.com", name="Jordan Rep"), at=utcnow())
    kill_worker_while_held(app, settings, receiver)
    reached = WebhookEvent.get(WebhookEvent.public_id == receiver.ids()[0])
    [charged] = WebhookDelivery.select().where(WebhookDelivery.event == reached.id)
    [untouched] = WebhookDelivery.select().where(WebhookDelivery.event != reached.id)
    with time_machine.travel(utcnow() + timedelta(seconds=61), tick=True) as clock:
        taken_over_at = utcnow()
        sweep_webhooks()
        charged, untouched = (WebhookDelivery.get_by_id(charged.id),
                              WebhookDelivery.get_by_id(untouched.id))
        assert untouched.status == "delivered" and untouched.attempts == 1
        assert untouched.last_error == ""
        assert charged.status == "pending" and charged.attempts == 1
        assert charged.claimed_at is None and "the sender stopped" in charged.last_error
        assert timedelta(seconds=5) <= charged.next_attempt_at - taken_over_at \
            < timedelta(seconds=6), "the delay before the second attempt"
        assert receiver.ids().count(reached.public_id) == 1, "not sent again at once"
        assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is not None
        clock.shift(timedelta(seconds=6))
        sweep_webhooks()
    charged = WebhookDelivery.get_by_id(charged.id)
    assert charged.status == "delivered" and charged.attempts == 2
    assert receiver.ids().count(reached.public_id) == 2, "the documented duplicate"
    assert len(receiver.requests) == 3
    assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is None


def test_senders_dying_before_reaching_a_delivery_never_use_up_its_attempts(app, rep,
                                                                           receiver):
    endpoint, _ = endpoint_to(receiver, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    [delivery] = WebhookDelivery.select()
    with time_machine.travel(utcnow(), tick=True) as clock:
        for _ in range(len(SCHEDULE) + 2):  # a crash loop: each job dies before sending
            claimed_and_died(delivery.id, reached=False)
            clock.shift(timedelta(seconds=61))
        sweep_webhooks()
    found = WebhookDelivery.get_by_id(delivery.id)
    assert found.status == "delivered" and found.attempts == 1
    assert len(receiver.requests) == 1
    assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is None


def test_a_charged_attempt_waits_its_schedule(app, rep, receiver):
    """Attempt 3 died mid-POST: the fourth goes 30 minutes after the takeover, not before."""
    assert runtime.settings.outbound.retry_seconds == SCHEDULE
    endpoint_to(receiver, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    [delivery] = WebhookDelivery.select()
    WebhookDelivery.update(attempts=2).where(WebhookDelivery.id == delivery.id).execute()
    claimed_and_died(delivery.id, reached=True)
    with time_machine.travel(utcnow() + timedelta(seconds=61), tick=True) as clock:
        taken_over_at = utcnow()
        sweep_webhooks()
        found = WebhookDelivery.get_by_id(delivery.id)
        assert found.status == "pending" and found.attempts == 3
        assert timedelta(seconds=1800) <= found.next_attempt_at - taken_over_at \
            < timedelta(seconds=1801)
        clock.shift(timedelta(seconds=1790))
        sweep_webhooks()
        assert receiver.requests == [], "not before its time"
        clock.shift(timedelta(seconds=15))
        sweep_webhooks()
    found = WebhookDelivery.get_by_id(delivery.id)
    assert found.status == "delivered" and found.attempts == 4
    assert len(receiver.requests) == 1


def test_a_sender_that_outlived_its_claim_does_not_post(app, rep, receiver):
    """The claim was taken over (and the delivery sent) while the first sender stalled
    before its POST: it sends nothing and records nothing."""
    endpoint_to(receiver, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    [delivery] = WebhookDelivery.select()
    first_claim = utcnow()
    sending.claim([delivery.id], now=first_claim, claim_seconds=60)
    later = first_claim + timedelta(seconds=61)
    assert sending.deliver([delivery.id], settings=runtime.settings, now=later) == 1
    assert not sending.started(delivery.id, now=first_claim)
    [row] = sending.loaded([delivery.id])
    with sending.Connections(runtime.settings) as connections:
        assert sending.send_one(row, connections, settings=runtime.settings,
                                now=first_claim) == "superseded"
    assert len(receiver.requests) == 1
    found = WebhookDelivery.get_by_id(delivery.id)
    assert found.status == "delivered" and found.delivered_at == later
