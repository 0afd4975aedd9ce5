"""Accepting intake: events are stored as they came, committed before the caller answers,
and recorded by workers moments later (service.intake.activity.record_inbound)."""

from __future__ import annotations

from datetime import datetime

from service.core import metrics
from service.core.fastsql import append_rows
from service.core.models import Delivery, InboundEvent
from service.intake.event import Event
from service.intake.partitions import partition_of


def accept_messages(messages: list[tuple[Event, str]], *, source: str, now: datetime) -> None:
    """Store a batch of (event, message id) for recording, committed before the caller
    answers. Only appends: the ids are claimed when recorded (a random-key unique index
    is the costly part of a commit), so the write lock is held for a few sequential inserts."""
    rows = [{"source": source, "received_at": now, "event": event.to_json(),
             "delivery_id": Delivery.stored_id(message_id), "partition": partition_of(event)}
            for event, message_id in messages]
    append_rows(InboundEvent, rows)
    metrics.add("leadbridge_intake_accepted_total", len(rows), source=source)


def accept_delivery(events: list[Event], *, delivery_id: str, source: str,
                    now: datetime) -> int:
    """Store a signed webhook delivery's events for recording and return how many. Event n
    is stored under its own delivery id (event_delivery_id), so the recorder, which claims
    each id once per source, records a first delivery whole and a re-delivery not at all."""
    accept_messages([(event, event_delivery_id(delivery_id, n))
                     for n, event in enumerate(events)], source=source, now=now)
    return len(events)


def event_delivery_id(delivery_id: str, n: int) -> str:
    """"<delivery id>" for event 0, "<delivery id>/<n>" for event n, within the width
    Delivery keeps: a long id is cut before the suffix, so every event keeps its own."""
    suffix = f"/{n}" if n else ""
    return delivery_id[:Delivery.delivery_id.max_length - len(suffix)] + suffix
