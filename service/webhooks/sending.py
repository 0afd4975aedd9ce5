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
DIED = ("the sender stopped during the attempt (its claim lapsed: the worker died or was "
        "stopped)")
MAX_ERROR = 500
COUNTED = ("delivered", "retried", "failed", "held")  # outcomes with a metric


def deliver(delivery_ids: list[int], *, settings: Settings, now: datetime) -> int:
    """Send the deliveries this call can claim; return how many were delivered. The job
    ends in time, records and all, before its RQ timeout (two thirds of
    outbound.claim_seconds): an attempt starts only if its whole deadline
    (outbound.timeout_seconds) ends within half the claim; the rest are let go and queued
    again. A fault while sending one delivery is that delivery's failed attempt."""
    stop_at = time.monotonic() + settings.outbound.claim_seconds / 2
    claimed, taken_over = claim(delivery_ids, now=now,
                                claim_seconds=settings.outbound.claim_seconds)
    outcomes: Counter = Counter()
    rows = []
    for delivery in loaded(claimed):
        outcome = taken_over_from_a_dead_sender(delivery, settings=settings, now=now) \
            if delivery.id in taken_over else None
        if outcome:
            outcomes[outcome, delivery.event.type] += 1
        else:
            rows.append(delivery)
    send_in_time(rows, outcomes, stop_at=stop_at, settings=settings, now=now)
    for (outcome, event_type), count in outcomes.items():
        if outcome in COUNTED:
            metrics.add(f"leadbridge_webhooks_{outcome}_total", count, type=event_type)
    return sum(n for (outcome, _), n in outcomes.items() if outcome == "delivered")


def send_in_time(rows: list[WebhookDelivery], outcomes: Counter, *, stop_at: float,
                 settings: Settings, now: datetime) -> None:
    """Attempt each while a whole attempt still ends by stop_at; let the rest go."""
    timeout = settings.outbound.timeout_seconds
    with Connections(settings) as connections:
        for index, delivery in enumerate(rows):
            if time.monotonic() + timeout > stop_at:
                out_of_time([row.id for row in rows[index:]], queue_again=index > 0, now=now)
                return
            outcome = attempt(delivery, connections, settings=settings, now=now)
            outcomes[outcome, delivery.event.type] += 1


def out_of_time(delivery_ids: list[int], *, queue_again: bool, now: datetime) -> None:
    """Let go what the job has no time left for; queued again if the job got somewhere
    (else the sweep takes them, so a job that cannot start never loops)."""
    let_go(delivery_ids, now=now)
    if queue_again:
        events.enqueue_deliveries(delivery_ids)


def claim(delivery_ids: list[int], *, now: datetime,
          claim_seconds: int) -> tuple[list[int], set[int]]:
    """Take the pending deliveries that are due and not held by another sender (or whose
    sender's claim lapsed: it died mid-send), counting the attempt; (every id taken, those
    taken over from a lapsed claim)."""
    if not delivery_ids:
        return [], set()
    lapsed = now - timedelta(seconds=claim_seconds)
    taken_over = set(_claim(delivery_ids, WebhookDelivery.claimed_at <= lapsed, now=now))
    free = _claim(delivery_ids, WebhookDelivery.claimed_at.is_null(), now=now)
    return sorted(taken_over.union(free)), taken_over


def _claim(delivery_ids: list[int], held, *, now: datetime) -> list[int]:
    query = (WebhookDelivery
             .update(claimed_at=now, attempts=WebhookDelivery.attempts + 1)
             .where(WebhookDelivery.id.in_(delivery_ids),
                    WebhookDelivery.status == WebhookStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now, held)
             .returning(WebhookDelivery.id))
    return [row.id for row in query.execute()]


def taken_over_from_a_dead_sender(delivery: WebhookDelivery, *, settings: Settings,
                                  now: datetime) -> str | None:
    """The earlier sender died during its attempt (its claim lapsed): that attempt failed,
    for the endpoint's health too. If it was the last of the schedule the delivery has
    failed ("failed"); else None, and it is sent now."""
    schedule = settings.outbound.retry_seconds
    if delivery.attempts <= len(schedule):
        with transaction():
            if health.failed(delivery.endpoint_id, error=DIED, settings=settings, now=now):
                delivery.endpoint.active = False  # disabled by it: held, not sent
        return None
    log.warning("webhook delivery %d to endpoint %d: %s; gave up", delivery.id,
                delivery.endpoint_id, DIED)
    with transaction():
        recorded = WebhookDelivery.update(
            status=WebhookStatus.FAILED, next_attempt_at=None, claimed_at=None,
            attempts=len(schedule), last_error=DIED, last_status_code=None,
            response_excerpt="",
        ).where(WebhookDelivery.id == delivery.id, WebhookDelivery.claimed_at == now).execute()
        if recorded:
            health.failed(delivery.endpoint_id, error=DIED, settings=settings, now=now)
    return "failed" if recorded else "superseded"


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


def attempt(delivery: WebhookDelivery, connections: Connections, *, settings: Settings,
            now: datetime) -> str:
    """send_one, and if even recording its outcome failed (the database), the claim lapses
    and the sweep sends it again: the job goes on with the others."""
    try:
        return send_one(delivery, connections, settings=settings, now=now)
    except Exception:  # one delivery's fault is not the batch's
        log.exception("webhook delivery %d: its attempt could not be recorded; it goes "
                      "again once its claim lapses", delivery.id)
        return "unrecorded"


def send_one(delivery: WebhookDelivery, connections: Connections, *, settings: Settings,
             now: datetime) -> str:
    """One attempt, recorded; "delivered", "retried", "failed", "held", or "superseded"
    (another sender took the claim over meanwhile: its outcome stands)."""
    if not may_send(delivery):
        hold(delivery.id, now=now)
        return "held"
    endpoint = delivery.endpoint
    try:
        body, headers = message(delivery.event, endpoint, settings=settings, now=now)
        answer = connections.post(endpoint.id, endpoint.url, body, headers,
                                  seconds=settings.outbound.timeout_seconds)
    except SendError as exc:
        return record_failure(delivery, error=str(exc), settings=settings, now=now)
    except Exception as exc:  # this delivery's own fault (its row, its URL)
        log.exception("webhook delivery %d: unexpected error while sending", delivery.id)
        return record_failure(delivery, error=unexpected(exc), settings=settings, now=now)
    if 200 <= answer.status < 300:
        return record_success(delivery, answer, now=now)
    return record_failure(delivery, answer=answer, settings=settings, now=now,
                          error=f"HTTP {answer.status}" + (" (redirects are not followed)"
                                                           if 300 <= answer.status < 400
                                                           else ""))


def unexpected(exc: Exception) -> str:
    """A short reason for the delivery log (the traceback goes to the log)."""
    return f"not sent: an unexpected error ({type(exc).__name__}: {exc})"[:300]


def record_success(delivery: WebhookDelivery, answer: Answer, *, now: datetime) -> str:
    """Delivered, if the claim is still this sender's; "delivered" or "superseded"."""
    with transaction():
        recorded = WebhookDelivery.update(
            status=WebhookStatus.DELIVERED, delivered_at=now, last_attempt_at=now,
            last_status_code=answer.status, last_error="", response_excerpt=answer.excerpt,
            claimed_at=None).where(WebhookDelivery.id == delivery.id,
                                   WebhookDelivery.claimed_at == now).execute()
        if recorded:
            health.succeeded(delivery.endpoint_id)
    return "delivered" if recorded else superseded(delivery)


def record_failure(delivery: WebhookDelivery, *, error: str, settings: Settings,
                   now: datetime, answer: Answer | None = None) -> str:
    """Pending again after the next delay of the schedule, or failed when it is used up;
    the endpoint's failing time starts (and may disable it). Only while the claim is still
    this sender's. "retried", "failed" or "superseded"."""
    attempts, schedule = delivery.attempts, settings.outbound.retry_seconds
    retry = attempts < len(schedule)
    log.warning("webhook delivery %d to endpoint %d, attempt %d: %s%s", delivery.id,
                delivery.endpoint_id, attempts, error, "" if retry else "; gave up")
    with transaction():
        recorded = WebhookDelivery.update(
            status=WebhookStatus.PENDING if retry else WebhookStatus.FAILED,
            next_attempt_at=now + timedelta(seconds=schedule[attempts]) if retry else None,
            claimed_at=None, last_attempt_at=now, last_error=error[:MAX_ERROR],
            last_status_code=answer.status if answer else None,
            response_excerpt=answer.excerpt if answer else "",
        ).where(WebhookDelivery.id == delivery.id,
                WebhookDelivery.claimed_at == now).execute()
        if recorded:
            health.failed(delivery.endpoint_id, error=error, settings=settings, now=now)
    if not recorded:
        return superseded(delivery)
    return "retried" if retry else "failed"


def superseded(delivery: WebhookDelivery) -> str:
    log.warning("webhook delivery %d: its claim was taken over by another sender (this "
                "one outlived it); the outcome is not recorded over theirs", delivery.id)
    return "superseded"


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
