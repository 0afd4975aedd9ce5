"""Email: the outbox, nurture enrollments, suppression, provider events and clicks, the
digest log."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, UTCDateTimeField, utcnow
from service.core.models.fields import JSONField
from service.core.models.handoffs import Handoff
from service.core.models.leads import Lead
from service.core.statuses import EnrollmentStatus


class OutboxEmail(BaseModel):
    template = pw.CharField(max_length=64)
    to_address = pw.CharField(max_length=254)
    to_name = pw.CharField(default="")
    context = JSONField(default=dict)
    message_id = pw.CharField(unique=True)
    lead = pw.ForeignKeyField(Lead, null=True, backref="emails", on_delete="SET NULL")
    handoff = pw.ForeignKeyField(Handoff, null=True, backref="emails", on_delete="SET NULL")
    created_at = UTCDateTimeField(default=utcnow)
    claimed_at = UTCDateTimeField(null=True)
    sent_at = UTCDateTimeField(null=True)
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(default="")
    subject = pw.TextField(default="")
    body_text = pw.TextField(default="")
    body_html = pw.TextField(default="")
    to_prospect = pw.BooleanField(default=False)
    enrollment = pw.IntegerField(null=True, index=True)
    step = pw.IntegerField(null=True)  # the enrollment's nth email (0 the first)
    step_id = pw.CharField(max_length=32, default="")  # the sequence step it is (its id)
    skipped_at = UTCDateTimeField(null=True)
    skip_reason = pw.CharField(default="")
    retry_at = UTCDateTimeField(null=True)  # a transient failure: not before then
    failed_at = UTCDateTimeField(null=True)  # refused for good (5xx), or retries used up


class Enrollment(BaseModel):
    """A lead's place in a nurture sequence: how many steps it sent (step), the id of the
    last one (last_step_id: the next is the step after it in the sequence's current
    version), and when the next is due."""
    lead = pw.ForeignKeyField(Lead, backref="enrollments", on_delete="CASCADE")
    sequence = pw.CharField(max_length=64)
    step = pw.IntegerField(default=0)
    last_step_id = pw.CharField(max_length=32, default="")
    next_due_at = UTCDateTimeField(null=True)
    status = pw.CharField(max_length=16, default=EnrollmentStatus.ACTIVE)
    stop_reason = pw.CharField(max_length=32, default="")
    started_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()


    class Meta:
        indexes = ((("status", "next_due_at"), False), (("lead", "status"), False))


class Suppression(BaseModel):
    """An address never to send prospect mail to. Kept by hash so an erased lead's entry
    holds no address."""
    email_hash = pw.CharField(max_length=64, unique=True)
    email = pw.CharField(max_length=254, default="")
    reason = pw.CharField(max_length=32)
    source = pw.CharField(max_length=64, default="")
    at = UTCDateTimeField()


class EmailEvent(BaseModel):
    """A delivery event reported by an email provider, with its raw payload."""
    provider = pw.CharField(max_length=16)
    kind = pw.CharField(max_length=16)
    email = pw.CharField(max_length=254, index=True)
    at = UTCDateTimeField()
    detail = pw.TextField(default="")
    raw = JSONField(null=True)


class EmailClick(BaseModel):
    outbox = pw.IntegerField(index=True)
    url = pw.TextField()
    at = UTCDateTimeField()


class DigestLog(BaseModel):
    """One row per weekly digest sent, so several schedulers send it once."""
    week = pw.CharField(max_length=10, unique=True)
    sent_at = UTCDateTimeField()


OutboxEmail.add_index(OutboxEmail.created_at, where=OutboxEmail.sent_at.is_null(),
                      name="outbox_unsent")
