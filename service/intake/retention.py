"""Retention of delivery ids: the Delivery table (Segment messageIds, webhook ids, email
providers' single-use claims) keeps each id for `intake.dedupe_window_days`, then a sweep
deletes it. Like Segment, which deduplicates messageIds within a window, a message id seen
again after the window is a new message and is recorded again."""

from __future__ import annotations

from datetime import datetime, timedelta

from service.core.db import transaction
from service.core.models import Delivery

# Rows deleted per transaction: each chunk is one short statement through the received_at
# index (migration 25), so a million expired rows never hold a long lock on the table that
# every recorder writes to.
PRUNE_CHUNK = 5000


def prune_deliveries(*, window_days: int, now: datetime, chunk: int = PRUNE_CHUNK) -> int:
    """Delete the delivery ids received before the window, `chunk` rows per transaction;
    return how many were deleted."""
    cutoff = now - timedelta(days=window_days)
    total = 0
    while (deleted := _prune_chunk(cutoff, chunk)) == chunk:
        total += deleted
    return total + deleted


def _prune_chunk(cutoff: datetime, chunk: int) -> int:
    """One set-based DELETE of at most `chunk` expired rows, oldest first, in its own
    transaction."""
    expired = (Delivery.select(Delivery.id).where(Delivery.received_at < cutoff)
               .order_by(Delivery.received_at).limit(chunk))
    with transaction():
        return Delivery.delete().where(Delivery.id.in_(expired)).execute()
