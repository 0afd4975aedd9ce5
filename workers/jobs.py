"""Job functions. Their arguments are ids only (JSON-serialised, nothing personal in Redis)."""

from __future__ import annotations

from service.core import metrics, outbox
from service.core.db import utcnow
from service.core.runtime import runtime
from service.handoffs import escalation, morning
from service.intake import retention
from service.mail import delivery
from service.nurture import sequences as nurture
from service.reports import digest, rollups
from service.webhooks import sending


def send_emails(outbox_ids: list[int]) -> int:
    """Send outbox rows over mail.connections SMTP connections; rows sent already or held by
    another sender are left alone. Returns how many this job sent."""
    return delivery.deliver(list(outbox_ids), settings=runtime.settings,
                          secret=runtime.secret_key, now=utcnow())


def sweep_outbox() -> int:
    """Re-queue rows left unsent (Redis was down, or a send job died)."""
    settings = runtime.settings
    with metrics.timed("outbox"):
        ids = outbox.unsent_ids(now=utcnow(),
                                older_than_seconds=settings.outbox.requeue_after_seconds,
                                claim_seconds=settings.outbox.claim_seconds)
        return outbox.enqueue_sends(ids)


def deliver_webhooks(delivery_ids: list[int]) -> int:
    """POST webhook deliveries (a keep-alive connection per endpoint); those sent already or
    held by another sender are left alone. Returns how many were delivered."""
    return sending.deliver(list(delivery_ids), settings=runtime.settings, now=utcnow())


def sweep_webhooks() -> int:
    """Queue the webhook deliveries that are due: retries, and those whose job was lost."""
    with metrics.timed("webhooks"):
        return sending.sweep(settings=runtime.settings, now=utcnow())


def sweep_sla() -> dict:
    """Send the reminders, escalations and reassignments that have fallen due."""
    with metrics.timed("sla"):
        return dict(escalation.sweep(settings=runtime.settings, now=utcnow()))


def send_morning_emails() -> int:
    """Queue the morning email of each rep whose morning it is, once per rep and local day."""
    with metrics.timed("morning"):
        return morning.send_due(settings=runtime.settings, now=utcnow())


def sweep_nurture() -> int:
    """Queue the nurture steps that have fallen due."""
    with metrics.timed("nurture"):
        return nurture.sweep(settings=runtime.settings, now=utcnow())


def prune_deliveries() -> int:
    """Forget the delivery ids older than the dedupe window, in bounded chunks."""
    with metrics.timed("deliveries"):
        return retention.prune_deliveries(
            window_days=runtime.settings.intake.dedupe_window_days, now=utcnow())


def refresh_reports() -> int:
    """Recount the report rollups of days that changed, and the leads per stage."""
    now = utcnow()
    with metrics.timed("reports"):
        recounted = rollups.refresh(now)
        rollups.stages(now)
    return recounted


def send_digest() -> bool:
    """Queue the weekly digest once its day and time have come."""
    return digest.send_if_due(settings=runtime.settings, now=utcnow())
