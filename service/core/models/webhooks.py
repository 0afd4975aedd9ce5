"""What Leadbridge tells other systems: the endpoints that receive its events, the event
log (also read by polling, /api/v1/events) and each event's delivery to each endpoint."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, UTCDateTimeField, utcnow
from service.core.models.fields import JSONField
from service.core.statuses import WebhookStatus


class WebhookEndpoint(BaseModel):
    url = pw.CharField(max_length=2000)
    description = pw.CharField(default="")
    event_types = JSONField(default=list)  # empty: every type
    format = pw.CharField(max_length=16, default="standard")  # standard (signed) or slack
    active = pw.BooleanField(default=True)
    secret = pw.CharField(max_length=128)  # whsec_…, shown once
    # After a rotation the old secret also signs until previous_secret_until.
    previous_secret = pw.CharField(max_length=128, default="")
    previous_secret_until = UTCDateTimeField(null=True)
    # Set on the first failed attempt after a success; 5 days of failures disable it.
    failing_since = UTCDateTimeField(null=True)
    disabled_at = UTCDateTimeField(null=True)
    disabled_reason = pw.CharField(default="")
    created_by = pw.CharField(default="")
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    FORMATS = ("standard", "slack")

    def __str__(self) -> str:
        return self.description or self.url


class WebhookEvent(BaseModel):
    """One change, in the order of its id (the polling cursor). No foreign key to the lead:
    the log outlives a merge or an erasure (which leaves ids only in its events)."""
    public_id = pw.CharField(max_length=40, unique=True)  # msg_…: the webhook-id header
    type = pw.CharField(max_length=32, index=True)
    lead_id = pw.IntegerField(null=True, index=True)
    handoff_id = pw.IntegerField(null=True)
    sequence = pw.IntegerField(default=0)  # the lead's own count of events, from 1
    occurred_at = UTCDateTimeField(index=True)
    data = JSONField(default=dict)


class WebhookDelivery(BaseModel):
    event = pw.ForeignKeyField(WebhookEvent, backref="deliveries", on_delete="CASCADE")
    endpoint = pw.ForeignKeyField(WebhookEndpoint, backref="deliveries", on_delete="CASCADE")
    status = pw.CharField(max_length=16, default=WebhookStatus.PENDING)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(null=True)  # when pending: due from then
    claimed_at = UTCDateTimeField(null=True)  # a sender holds it (a lapsed claim is retried)
    last_attempt_at = UTCDateTimeField(null=True)
    last_status_code = pw.IntegerField(null=True)
    last_error = pw.CharField(max_length=500, default="")
    response_excerpt = pw.TextField(default="")
    delivered_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False), (("endpoint", "id"), False),
                   (("event", "endpoint"), True))
