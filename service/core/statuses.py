"""The words for where a handoff and an enrollment stand. Their transition tables, and the
only code that changes them, are in service.lifecycle (handoffs.py, enrollments.py), which
re-exports these names. They live down here because the tables' defaults and indexes
(models) and the report rollups, which the lifecycle itself builds on, name them too."""

from enum import StrEnum


class HandoffStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"
    FINISHED = "finished"


class InboundStatus(StrEnum):
    """Where an email that came in stands: placed (posted to a thread, a prospect's reply,
    an auto-reply noted, a delivery report counted) or waiting for a person (held,
    unmatched) until attached or discarded."""
    POSTED = "posted"
    REPLIED = "replied"
    NOTED = "noted"
    BOUNCED = "bounced"
    HELD = "held"
    UNMATCHED = "unmatched"
    ATTACHED = "attached"
    DISCARDED = "discarded"


class WebhookStatus(StrEnum):
    """Where one event's delivery to one endpoint stands: waiting for its next attempt,
    delivered (a 2xx), or failed for good (tries used up, or the endpoint gone)."""
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
