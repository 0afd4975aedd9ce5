"""Sending deliveries: claim them (a conditional update, so a duplicated or re-run job sends
nothing twice), re-read each one's event and endpoint, POST it and record what happened:
delivered on any 2xx, else pending again on outbound.retry_seconds, failed once they are
used up. The one duplicate left: a sender killed after the endpoint got the POST and before
it was recorded; once the claim lapses it goes again, with the same webhook-id.

A sender notes that an attempt starts (last_attempt_at = its claim's time) just before the
POST. When a lapsed claim is taken over, only a delivery whose attempt had started counts a
failed attempt (for the schedule and the endpoint's health) and waits its turn in the
schedule; one the dead sender never reached is sent as a first try of the same attempt.

A delivery to an endpoint that is not active (turned off by an admin, or disabled after
failing for days) is not sent and not failed: it stays pending, out of the sweep, and goes
when the endpoint is turned on again. Test events go to inactive endpoints too."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from peewee import JOIN
from rq.timeouts import BaseTimeoutException

from service import events
from service.core import metrics
from service.core.db import transaction
from service.core.jsontext import UNSTORABLE
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
    to_send, died_sending = claim(delivery_ids, now=now,
                                  claim_seconds=settings.outbound.claim_seconds)
    outcomes: Counter = Counter()
    for delivery in loaded(died_sending):
        outcome = record_failure(delivery, error=DIED, settings=settings, now=now,
                                 attempted_at=delivery.last_attempt_at)
        outcomes[outcome, delivery.event.type] += 1
    send_in_time(loaded(to_send), outcomes, stop_at=stop_at, settings=settings, now=now)
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
            try:
                outcome = attempt(delivery, connections, settings=settings, now=now)
            except BaseTimeoutException:  # RQ's: the job ends; the rest are let go
                let_go_if_possible([row.id for row in rows[index + 1:]], now=now)
                raise
            outcomes[outcome, delivery.event.type] += 1


def out_of_time(delivery_ids: list[int], *, queue_again: bool, now: datetime) -> None:
    """Let go what the job has no time left for; queued again if the job got somewhere
    (else the sweep takes them, so a job that cannot start never loops)."""
    let_go(delivery_ids, now=now)
    if queue_again:
        events.enqueue_deliveries(delivery_ids)


def claim(delivery_ids: list[int], *, now: datetime,
          claim_seconds: int) -> tuple[list[int], list[int]]:
    """Take the pending deliveries that are due and not held by another sender, counting
    the attempt, or whose sender's claim lapsed (it died): (those to send, those whose
    attempt the dead sender had started, to be recorded as failed). One it had not
    reached keeps the attempt its claim counted, for the try now."""
    if not delivery_ids:
        return [], []
    lapsed = WebhookDelivery.claimed_at <= now - timedelta(seconds=claim_seconds)
    began = WebhookDelivery.last_attempt_at == WebhookDelivery.claimed_at
    died_sending = _claim(delivery_ids, lapsed & began, now=now, counted=False)
    not_reached = _claim(delivery_ids, lapsed & (WebhookDelivery.last_attempt_at.is_null()
                                                 | (WebhookDelivery.last_attempt_at
                                                    != WebhookDelivery.claimed_at)),
                         now=now, counted=False)
    free = _claim(delivery_ids, WebhookDelivery.claimed_at.is_null(), now=now, counted=True)
    return sorted(not_reached + free), sorted(died_sending)


def _claim(delivery_ids: list[int], held, *, now: datetime, counted: bool) -> list[int]:
    attempts = WebhookDelivery.attempts + 1 if counted else WebhookDelivery.attempts
    query = (WebhookDelivery
             .update(claimed_at=now, attempts=attempts)
             .where(WebhookDelivery.id.in_(delivery_ids),
                    WebhookDelivery.status == WebhookStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now, held)
             .returning(WebhookDelivery.id))
    return [row.id for row in query.execute()]


def started(delivery_id: int, *, now: datetime) -> bool:
    """Note that the attempt of the claim made at `now` begins (its POST may reach the
    endpoint from here on); False if the claim is no longer this sender's."""
    return bool(WebhookDelivery.update(last_attempt_at=now).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.claimed_at == now).execute())


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
    except BaseTimeoutException:  # RQ's job timeout: not this delivery's fault
        raise
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
        if not started(delivery.id, now=now):
            return superseded(delivery)
        answer = connections.post(endpoint.id, endpoint.url, body, headers,
                                  seconds=settings.outbound.timeout_seconds)
    except SendError as exc:
        return record_failure(delivery, error=str(exc), settings=settings, now=now)
    except BaseTimeoutException:  # RQ's job timeout: not the endpoint's failure
        raise
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
            last_status_code=answer.status, last_error="",
            response_excerpt=storable(answer.excerpt), claimed_at=None,
        ).where(WebhookDelivery.id == delivery.id, WebhookDelivery.claimed_at == now).execute()
        if recorded:
            health.succeeded(delivery.endpoint_id)
    return "delivered" if recorded else superseded(delivery)


def record_failure(delivery: WebhookDelivery, *, error: str, settings: Settings,
                   now: datetime, answer: Answer | None = None,
                   attempted_at: datetime | None = None) -> str:
    """Pending again after the next delay of the schedule, or failed when it is used up;
    the endpoint's failing time starts (and may disable it). Only while the claim is still
    this sender's. "retried", "failed" or "superseded"."""
    attempts, schedule = delivery.attempts, settings.outbound.retry_seconds
    error = storable(error)[:MAX_ERROR]
    retry = attempts < len(schedule)
    log.warning("webhook delivery %d to endpoint %d, attempt %d: %s%s", delivery.id,
                delivery.endpoint_id, attempts, error, "" if retry else "; gave up")
    with transaction():
        recorded = WebhookDelivery.update(
            status=WebhookStatus.PENDING if retry else WebhookStatus.FAILED,
            next_attempt_at=now + timedelta(seconds=schedule[attempts]) if retry else None,
            claimed_at=None, last_attempt_at=attempted_at or now, last_error=error,
            last_status_code=answer.status if answer else None,
            response_excerpt=storable(answer.excerpt) if answer else "",
        ).where(WebhookDelivery.id == delivery.id,
                WebhookDelivery.claimed_at == now).execute()
        if recorded:
            health.failed(delivery.endpoint_id, error=error, settings=settings, now=now)
    if not recorded:
        return superseded(delivery)
    return "retried" if retry else "failed"


def storable(text: str | None) -> str:
    """Text from the endpoint as the database can keep it: a NUL or a lone surrogate (from a
    binary body, say) becomes U+FFFD, as undecodable bytes already are."""
    return UNSTORABLE.sub("\ufffd", text or "")


def superseded(delivery: WebhookDelivery) -> str:
    log.warning("webhook delivery %d: its claim was taken over by another sender (this "
                "one outlived it); the outcome is not recorded over theirs", delivery.id)
    return "superseded"


def hold(delivery_id: int, *, now: datetime) -> None:
    """Not sent (the endpoint is off): free it, the attempt not counted."""
    WebhookDelivery.update(claimed_at=None, attempts=WebhookDelivery.attempts - 1,
                           last_error=INACTIVE).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.claimed_at == now).execute()


def let_go_if_possible(delivery_ids: list[int], *, now: datetime) -> None:
    """let_go as the job ends on RQ's timeout; if even that fails, their claims lapse."""
    try:
        let_go(delivery_ids, now=now)
    except Exception:
        log.exception("webhook deliveries %s: could not be let go; they go again once "
                      "their claims lapse", delivery_ids)


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
