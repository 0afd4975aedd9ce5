"""Accepted events are partitioned by visitor: every event of one visitor lands in one
partition, which one recorder at a time holds, so a visitor's events are recorded in the
order they were accepted while recorders holding other partitions work beside it."""

from __future__ import annotations

from zlib import crc32

from service.intake.event import Event

PARTITIONS = 32


def partition_of(event: Event, partitions: int = PARTITIONS) -> int:
    """The partition of the event's visitor: its anonymous id (what a tracking SDK sends
    on every call of a device), else its user id, else its email."""
    visitor = event.anonymous_id or event.user_id or event.email or ""
    return crc32(visitor.encode()) % partitions
