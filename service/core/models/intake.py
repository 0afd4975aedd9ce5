"""Intake: integration keys, delivery claims, visitor identities, accepted events, counters."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, UTCDateTimeField, utcnow
from service.core.models.fields import JSONField
from service.core.models.leads import Lead


class IntegrationKey(BaseModel):
    """A credential for an intake source: a webhook signing secret (kept, to verify HMACs)
    or a tracking write key (kept only as a hash)."""
    KINDS = ("webhook", "write_key", "api")
    kind = pw.CharField(max_length=16)
    source = pw.CharField(max_length=64)
    secret = pw.CharField(default="")
    key_hash = pw.CharField(max_length=64, null=True, unique=True)
    hint = pw.CharField(max_length=16, default="")
    active = pw.BooleanField(default=True)
    created_by = pw.CharField(default="")
    created_at = UTCDateTimeField(default=utcnow)
    owner = pw.CharField(max_length=254, default="")  # an API key's owner: who it acts for


    class Meta:
        indexes = ((("kind", "source"), False),)


class Delivery(BaseModel):
    """One row per delivery id (webhook-id, Segment messageId): re-deliveries collide here.
    Kept for intake.dedupe_window_days, then pruned by the retention sweep, oldest first
    through the received_at index (service.intake.retention)."""
    source = pw.CharField(max_length=80)
    delivery_id = pw.CharField(max_length=200)
    received_at = UTCDateTimeField(index=True)


    class Meta:
        indexes = ((("source", "delivery_id"), True),)


    @classmethod
    def stored_id(cls, delivery_id: str) -> str:
        """A delivery id as this table holds it: cut to the column's width."""
        return delivery_id[:cls.delivery_id.max_length]


class Identity(BaseModel):
    """A tracking id (anonymousId or userId) known to belong to a lead."""
    kind = pw.CharField(max_length=16)
    value = pw.CharField(max_length=200)
    lead = pw.ForeignKeyField(Lead, backref="identities", on_delete="CASCADE")


    class Meta:
        indexes = ((("kind", "value"), True),)


class AnonymousActivity(BaseModel):
    """Tracking activity from a visitor not yet tied to an email, parked under its tracking
    ids; moved to the lead once either of them is identified. A call with only a userId has
    an empty anonymous_id."""
    anonymous_id = pw.CharField(max_length=200, index=True)
    user_id = pw.CharField(max_length=200, null=True, index=True)
    type = pw.CharField(max_length=64)
    occurred_at = UTCDateTimeField()
    source = pw.CharField(max_length=64)
    properties = JSONField(default=dict)
    raw = JSONField(null=True)
    created_at = UTCDateTimeField(default=utcnow)


class InboundEvent(BaseModel):
    """A tracking message accepted (answered 200) and waiting for a worker to record it:
    identity, lead, activity and score. `failed` says why it could not be recorded, once
    recording it on its own failed; such rows stay for an operator to read."""
    # A queue, read oldest first and emptied as recorded: an id may come back once its row is
    # gone (nothing names one after), and SQLite's AUTOINCREMENT was 40 % of accepting.
    id = pw.AutoField()
    source = pw.CharField(max_length=80)
    received_at = UTCDateTimeField()
    # Claimed in Delivery when recorded (a re-delivery is dropped then), so accepting only
    # appends rows. Null for rows accepted before version 12, claimed at once.
    delivery_id = pw.CharField(max_length=200, null=True)
    # Event.to_json(), encoded before the accepting transaction opens
    event = pw.TextField()
    failed = pw.TextField(null=True)
    # The visitor's partition (service.intake.partitions): a recorder holding its lease
    # records its events in order, beside recorders holding others. Indexed with id on
    # PostgreSQL only, where leases read by partition (migration 27).
    partition = pw.SmallIntegerField(default=0)


class IntakeStat(BaseModel):
    """Daily counters of what intake dropped (honeypot hits, rate-limited posts)."""
    day = pw.CharField(max_length=10)
    source = pw.CharField(max_length=80)
    event = pw.CharField(max_length=32)
    count = pw.IntegerField(default=0)


    class Meta:
        indexes = ((("day", "source", "event"), True),)
