"""Sending deliveries: claim them (a conditional update, so a duplicated or re-run job sends
nothing twice), re-read each one's event and endpoint, POST it and record what happened:
delivered on any 2xx, else pending again on outbound.retry_seconds, failed once they are
used up. The one duplicate left: a sender killed after the endpoint got the POST and before
it was recorded; once the claim lapses it goes again, with the same webhook-id.

A delivery to an endpoint that is not active (turned off by an admin, or disabled after
failing for days) is not sent and not failed: it stays pending, out of the sweep, and goes
when the endpoint is turned on again. Test events go to inactive endpoints too."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from peewee import JOIN

from service import events
from service.core import metrics
from service.core.db import transaction
from service.core.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.core.settings import Settings
from service.core.statuses import WebhookStatus
from service.webhooks import health
from service.webhooks.connections import Answer, Connections, SendError
from service.webhooks.formats import message

log = logging.getLogger(__name__)
INACTIVE = "not sent: the endpoint is not active; it goes when the endpoint is turned on again"
MAX_ERROR = 500


def deliver(delivery_ids: list[int], *, settings: Settings, now: datetime) -> int:
    """Send the deliveries this call can claim; return how many were delivered. Sending
    stops in time for the claim (outbound.claim_seconds) not to lapse; the rest are let go
    and queued again."""
    claimed = claim(delivery_ids, now=now, claim_seconds=settings.outbound.claim_seconds)
    rows = loaded(claimed)
    stop_at = time.monotonic() + settings.outbound.claim_seconds / 2
    outcomes: Counter = Counter()
    with Connections(settings) as connections:
        for index, delivery in enumerate(rows):
            if index and time.monotonic() + settings.outbound.timeout_seconds > stop_at:
                let_go([row.id for row in rows[index:]], now=now)
                events.enqueue_deliveries([row.id for row in rows[index:]])
                break
            outcome = send_one(delivery, connections, settings=settings, now=now)
            outcomes[outcome, delivery.event.type] += 1
    for (outcome, event_type), count in outcomes.items():
        metrics.add(f"leadbridge_webhooks_{outcome}_total", count, type=event_type)
    return sum(n for (outcome, _), n in outcomes.items() if outcome == "delivered")


def claim(delivery_ids: list[int], *, now: datetime, claim_seconds: int) -> list[int]:
    """Take the pending deliveries that are due and not held by another sender (or whose
    sender's claim lapsed: it died mid-send), counting the attempt."""
    if not delivery_ids:
        return []
    lapsed = now - timedelta(seconds=claim_seconds)
    query = (WebhookDelivery
             .update(claimed_at=now, attempts=WebhookDelivery.attempts + 1)
             .where(WebhookDelivery.id.in_(delivery_ids),
                    WebhookDelivery.status == WebhookStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookDelivery.claimed_at.is_null() | (WebhookDelivery.claimed_at <= lapsed))
             .returning(WebhookDelivery.id))
    return sorted(row.id for row in query.execute())


def loaded(delivery_ids: list[int]) -> list[WebhookDelivery]:
    """The claimed deliveries with their event and endpoint, read now."""
    if not delivery_ids:
        return []
    return list(WebhookDelivery.select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
                .join(WebhookEvent).switch(WebhookDelivery)
                .join(WebhookEndpoint, JOIN.INNER)
                .where(WebhookDelivery.id.in_(delivery_ids)).order_by(WebhookDelivery.id))


def may_send(delivery: WebhookDelivery) -> bool:
    return delivery.endpoint.active or delivery.event.type == events.TEST_EVENT


def send_one(delivery: WebhookDelivery, connections: Connections, *, settings: Settings,
             now: datetime) -> str:
    """One attempt, recorded; "delivered", "retried", "failed" or "held"."""
    if not may_send(delivery):
        hold(delivery.id, now=now)
        return "held"
    endpoint = delivery.endpoint
    body, headers = message(delivery.event, endpoint, settings=settings, now=now)
    try:
        answer = connections.post(endpoint.id, endpoint.url, body, headers)
    except SendError as exc:
        return record_failure(delivery, error=str(exc), settings=settings, now=now)
    if 200 <= answer.status < 300:
        record_success(delivery, answer, now=now)
        return "delivered"
    return record_failure(delivery, answer=answer, settings=settings, now=now,
                          error=f"HTTP {answer.status}" + (" (redirects are not followed)"
                                                           if 300 <= answer.status < 400
                                                           else ""))


def record_success(delivery: WebhookDelivery, answer: Answer, *, now: datetime) -> None:
    with transaction():
        WebhookDelivery.update(
            status=WebhookStatus.DELIVERED, delivered_at=now, last_attempt_at=now,
            last_status_code=answer.status, last_error="", response_excerpt=answer.excerpt,
            claimed_at=None).where(WebhookDelivery.id == delivery.id).execute()
        health.succeeded(delivery.endpoint_id)


def record_failure(delivery: WebhookDelivery, *, error: str, settings: Settings,
                   now: datetime, answer: Answer | None = None) -> str:
    """Pending again after the next delay of the schedule, or failed when it is used up;
    the endpoint's failing time starts (and may disable it). "retried" or "failed"."""
    attempts, schedule = delivery.attempts, settings.outbound.retry_seconds
    retry = attempts < len(schedule)
    log.warning("webhook delivery %d to endpoint %d, attempt %d: %s%s", delivery.id,
                delivery.endpoint_id, attempts, error, "" if retry else "; gave up")
    with transaction():
        WebhookDelivery.update(
            status=WebhookStatus.PENDING if retry else WebhookStatus.FAILED,
            next_attempt_at=now + timedelta(seconds=schedule[attempts]) if retry else None,
            claimed_at=None, last_attempt_at=now, last_error=error[:MAX_ERROR],
            last_status_code=answer.status if answer else None,
            response_excerpt=answer.excerpt if answer else "",
        ).where(WebhookDelivery.id == delivery.id).execute()
        health.failed(delivery.endpoint_id, error=error, settings=settings, now=now)
    return "retried" if retry else "failed"


def hold(delivery_id: int, *, now: datetime) -> None:
    """Not sent (the endpoint is off): free it, the attempt not counted."""
    WebhookDelivery.update(claimed_at=None, attempts=WebhookDelivery.attempts - 1,
                           last_error=INACTIVE).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.claimed_at == now).execute()


def let_go(delivery_ids: list[int], *, now: datetime) -> None:
    """Claimed but not tried (the job ran out of time): free them, the attempt not counted."""
    WebhookDelivery.update(claimed_at=None, attempts=WebhookDelivery.attempts - 1).where(
        WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.claimed_at == now).execute()


def due_ids(*, now: datetime, claim_seconds: int, limit: int = 5000) -> list[int]:
    """Deliveries the sweep queues: pending to an active endpoint (test events: any), not
    held by a live claim, and due: a retry whose time has come, or a first attempt whose job
    should have run by now (Redis was down at the commit, or the job was lost)."""
    lapsed = now - timedelta(seconds=claim_seconds)
    query = (WebhookDelivery.select(WebhookDelivery.id)
             .join(WebhookEndpoint).switch(WebhookDelivery).join(WebhookEvent)
             .where(WebhookDelivery.status == WebhookStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    (WebhookDelivery.attempts > 0) | (WebhookDelivery.next_attempt_at <= lapsed),
                    WebhookDelivery.claimed_at.is_null() | (WebhookDelivery.claimed_at <= lapsed),
                    WebhookEndpoint.active | (WebhookEvent.type == events.TEST_EVENT))
             .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit))
    return [row.id for row in query]


def sweep(*, settings: Settings, now: datetime) -> int:
    """Queue the deliveries that are due; how many."""
    return events.enqueue_deliveries(due_ids(now=now,
                                             claim_seconds=settings.outbound.claim_seconds))
