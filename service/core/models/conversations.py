"""Email that comes in, and the thread on a handoff between its rep and the marketer who
promoted the lead."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, UTCDateTimeField
from service.core.models.fields import JSONField
from service.core.models.handoffs import Handoff
from service.core.models.leads import Lead
from service.core.models.mail import Enrollment
from service.core.statuses import InboundStatus


class InboundEmail(BaseModel):
    """One email received, by IMAP or a provider's webhook, with its raw message (up to
    inbound.max_message_bytes), the reply text taken from it and what became of it."""
    channel = pw.CharField(max_length=32)
    # The Message-ID, else a digest of the raw message: the same email twice is one row.
    dedup_key = pw.CharField(max_length=255, unique=True)
    received_at = UTCDateTimeField()
    message_id = pw.TextField(default="")
    from_address = pw.CharField(max_length=254, default="")
    from_name = pw.CharField(default="")
    subject = pw.TextField(default="")
    text = pw.TextField(default="")  # the reply alone: quoted history and signature removed
    attachments = JSONField(default=list)  # names, types and sizes; the files are not kept
    raw = pw.BlobField(null=True)
    kind = pw.CharField(max_length=16, default="reply")  # reply, auto_reply, out_of_office, report
    status = pw.CharField(max_length=16, default=InboundStatus.UNMATCHED)
    reason = pw.TextField(default="")
    lead = pw.ForeignKeyField(Lead, null=True, backref="inbound_emails", on_delete="CASCADE")
    handoff = pw.ForeignKeyField(Handoff, null=True, on_delete="SET NULL")
    enrollment = pw.ForeignKeyField(Enrollment, null=True, on_delete="SET NULL")
    reviewed_by = pw.CharField(default="")
    reviewed_at = UTCDateTimeField(null=True)


    class Meta:
        indexes = ((("status", "received_at"), False),)


class HandoffMessage(BaseModel):
    """A message on a handoff's thread: from its rep or from the marketer, by email or from
    the panel; an out-of-office auto-reply of the rep is noted here too (kind)."""
    handoff = pw.ForeignKeyField(Handoff, backref="messages", on_delete="CASCADE")
    author = pw.CharField(max_length=16)  # rep, marketer
    author_address = pw.CharField(max_length=254)
    author_name = pw.CharField(default="")
    body = pw.TextField()
    at = UTCDateTimeField()
    via = pw.CharField(max_length=16)  # email, panel
    kind = pw.CharField(max_length=16, default="message")  # message, out_of_office
    inbound = pw.ForeignKeyField(InboundEmail, null=True, on_delete="SET NULL")
