"""Data-subject requests: export everything stored about a lead, or erase it, leaving only
a hashed suppression entry so the address is never mailed again."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from playhouse.shortcuts import model_to_dict
from redis.exceptions import RedisError

from service import events
from service.core.db import after_commit, transaction
from service.core.errors import NotFound
from service.core.models import (
    Activity,
    EmailClick,
    EmailEvent,
    Enrollment,
    Handoff,
    HandoffMessage,
    Identity,
    InboundEmail,
    Lead,
    LeadMerge,
    OutboxEmail,
    StageChange,
    Suppression,
)
from service.core.outbox import job_id
from service.core.runtime import runtime
from service.lifecycle import audit
from service.nurture.suppression import email_hash
from service.reports.rollups import mark_lead_dirty


def _rows(query) -> list[dict]:
    return [model_to_dict(row, recurse=False) for row in query]


def _received_from(lead: Lead):
    return (InboundEmail.lead == lead.id) | (InboundEmail.from_address == lead.email)


def _received(row: InboundEmail) -> dict:
    """An email received, its raw message as text (JSON holds no bytes)."""
    values = model_to_dict(row, recurse=False)
    values["raw"] = bytes(row.raw or b"").decode("utf-8", "replace")
    return values


def export_lead(lead_id: int) -> dict:
    lead = Lead.get_or_none(Lead.id == lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    emails = OutboxEmail.select().where((OutboxEmail.lead == lead_id) |
                                        (OutboxEmail.to_address == lead.email))
    return {
        "lead": model_to_dict(lead, recurse=False),
        "activities": _rows(Activity.select().where(Activity.lead == lead_id)),
        "identities": _rows(Identity.select().where(Identity.lead == lead_id)),
        "stage_history": _rows(StageChange.select().where(StageChange.lead == lead_id)),
        "handoffs": _rows(Handoff.select().where(Handoff.lead == lead_id)),
        "enrollments": _rows(Enrollment.select().where(Enrollment.lead == lead_id)),
        "emails": _rows(emails),
        "email_clicks": _rows(EmailClick.select().where(
            EmailClick.outbox.in_([e.id for e in emails]))),
        "email_events": _rows(EmailEvent.select().where(EmailEvent.email == lead.email)),
        "emails_received": [_received(row) for row in InboundEmail.select().where(
            _received_from(lead))],
        "handoff_messages": _rows(HandoffMessage.select().join(Handoff).where(
            Handoff.lead == lead_id)),
        "merges": _rows(LeadMerge.select().where(LeadMerge.survivor == lead_id)),
        "suppression": _rows(Suppression.select().where(
            Suppression.email_hash == email_hash(lead.email))),
    }


def erase_lead(lead_id: int, *, actor: str, data_dir: Path, now: datetime) -> str:
    """Delete the lead and everything about it; return the hash left in suppression."""
    with transaction():
        lead = Lead.get_or_none(Lead.id == lead_id)
        if lead is None:
            raise NotFound(f"lead {lead_id} not found")
        digest = email_hash(lead.email)
        outbox_ids = [row.id for row in OutboxEmail.select(OutboxEmail.id).where(
            (OutboxEmail.lead == lead_id) | (OutboxEmail.to_address == lead.email))]
        EmailClick.delete().where(EmailClick.outbox.in_(outbox_ids)).execute()
        OutboxEmail.delete().where(OutboxEmail.id.in_(outbox_ids)).execute()
        EmailEvent.delete().where(EmailEvent.email == lead.email).execute()
        InboundEmail.delete().where(_received_from(lead)).execute()
        Suppression.delete().where(Suppression.email_hash == digest).execute()
        Suppression.create(email_hash=digest, email="", reason="erased", source="gdpr", at=now)
        mark_lead_dirty(lead_id)
        events.erase(lead_id, now=now)
        Lead.delete().where(Lead.id == lead_id).execute()  # activities, history… cascade
        audit(actor, "erase", f"lead:{lead_id}", {"email_hash": digest}, now)
        after_commit(lambda: _forget_mail(outbox_ids, data_dir))
    return digest


def _forget_mail(outbox_ids: list[int], data_dir: Path) -> None:
    """Drop queued send jobs and captured copies of the erased lead's mail."""
    for outbox_id in outbox_ids:
        (data_dir / "mail" / f"{outbox_id:08d}.eml").unlink(missing_ok=True)
        if runtime.queue is not None:
            try:
                runtime.queue.remove(job_id([outbox_id]))
            except RedisError:
                pass  # the job re-reads its row, finds none, and sends nothing
