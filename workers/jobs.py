"""Job functions. Their arguments are ids only (JSON-serialised, nothing personal in Redis)."""

from __future__ import annotations

from service import emails, escalation, outbox
from service.db import utcnow
from service.runtime import runtime


def send_email(outbox_id: int) -> int:
    """Send one outbox row; 0 when it was sent already or another sender holds it."""
    return emails.deliver([outbox_id], settings=runtime.settings, secret=runtime.secret_key,
                          now=utcnow())


def sweep_outbox() -> int:
    """Re-queue rows left unsent (Redis was down, or a send job died)."""
    settings = runtime.settings
    ids = outbox.unsent_ids(now=utcnow(),
                            older_than_seconds=settings["outbox.requeue_after_seconds"],
                            claim_seconds=settings["outbox.claim_seconds"])
    return outbox.enqueue_sends(ids)


def sweep_sla() -> dict:
    """Send the reminders, escalations and reassignments that have fallen due."""
    return dict(escalation.sweep(settings=runtime.settings, now=utcnow()))
