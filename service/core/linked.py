"""The record a signed link still names, or None when it no longer exists: its lead was
erased, or the id it carries now belongs to a newer row. The pages answer 410 then."""

from __future__ import annotations

from datetime import datetime, timedelta

from service.core.links import ClickLink, HandoffLink, UnsubscribeLink
from service.core.models import AuditEvent, Handoff, Lead, LeadMerge, OutboxEmail, SchemaVersion

PUBLIC_IDS_VERSION = 14  # the migration from which links carry the lead's public id


def lead_by_public_id(public_id: str) -> Lead | None:
    """The lead a link was made for, or the lead it has been merged into since."""
    lead = Lead.get_or_none(Lead.public_id == public_id)
    if lead is None:
        merge = LeadMerge.get_or_none(LeadMerge.merged_public_id == public_id)
        lead = Lead.get_or_none(Lead.id == merge.survivor_id) if merge else None
    return lead


def unsubscribing_lead(link: UnsubscribeLink) -> Lead | None:
    if link.public_id is not None:
        return lead_by_public_id(link.public_id)
    lead = Lead.get_or_none(Lead.id == link.lead_id)
    if lead is None or not _before_public_ids(lead.created_at) or _id_was_freed(lead.id):
        return None
    return lead


def clicked_email(link: ClickLink) -> OutboxEmail | None:
    row = OutboxEmail.get_or_none(OutboxEmail.id == link.outbox_id)
    if row is None or row.lead_id is None:
        return None
    if link.public_id is None:
        return row if _before_public_ids(row.created_at) else None
    lead = lead_by_public_id(link.public_id)
    return row if lead is not None and lead.id == row.lead_id else None


def decided_handoff(link: HandoffLink) -> Handoff | None:
    handoff = Handoff.get_or_none(Handoff.id == link.handoff_id)
    if handoff is None:
        return None
    if link.public_id is None:
        return handoff if _older_than_the_link(handoff, link) else None
    lead = lead_by_public_id(link.public_id)
    return handoff if lead is not None and lead.id == handoff.lead_id else None


def _older_than_the_link(handoff: Handoff, link: HandoffLink) -> bool:
    """A decision link made before version 14 carries a bare id, which SQLite handed out
    again after a delete; but it was signed after its handoff was made (promoted, or handed
    on by a reassignment), so a handoff made later is another one (the signature keeps
    whole seconds)."""
    made = handoff.promoted_at
    if handoff.replaces_id is not None:  # a step of an episode starts when it was handed on
        made = Handoff.get_by_id(handoff.replaces_id).reassigned_at or made
    return made < link.issued_at + timedelta(seconds=1)


def _before_public_ids(created_at: datetime) -> bool:
    """Links made before version 14 carry bare ids, which SQLite handed out again after a
    delete. Such a link is honoured only for a row created before version 14 was applied:
    from then on ids are never reused, but a row created later may still have taken an id
    freed earlier, so it cannot be the row an old link was made for. Unsubscribe links in
    old mail keep working (RFC 8058). Prospect mail is written by the nurture sweep, which
    is stopped while an upgrade runs, so no old process makes such a link for a newer row."""
    applied = SchemaVersion.get_or_none(SchemaVersion.version == PUBLIC_IDS_VERSION)
    return applied is not None and created_at <= applied.applied_at


def _id_was_freed(lead_id: int) -> bool:
    """A lead id that an erasure or a merge freed before version 14 may since have gone to
    another person: an old link naming it is ambiguous."""
    return (AuditEvent.select().where(AuditEvent.action == "erase",
                                      AuditEvent.subject == f"lead:{lead_id}").exists()
            or LeadMerge.select().where(LeadMerge.merged_id == lead_id).exists())
