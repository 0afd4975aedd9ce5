"""What an event says about a lead and a handoff: the same objects /api/v1 answers with."""

from __future__ import annotations

from datetime import datetime

from service.core.models import Handoff, Lead, Rep
from service.core.scores import Policy
from service.core.statuses import HandoffStatus

OWNING = (HandoffStatus.PENDING, HandoffStatus.ACCEPTED)


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def lead_json(lead: Lead, *, policy: Policy, now: datetime, owner: Rep | None = None) -> dict:
    """The lead's fields, stage, score now, and owner (the rep of its pending or accepted
    handoff, if any)."""
    score = policy.score(lead.score_log, now)
    return {"id": lead.id, "email": lead.email, "stage": lead.stage, "score": round(score, 2),
            "created_at": lead.created_at.isoformat(), "updated_at": _when(lead.updated_at),
            **{name: getattr(lead, name) for name in Lead.EDITABLE}, "source": lead.source,
            "owner": rep_brief(owner) if owner else None}


def owners(lead_ids: list[int]) -> dict[int, Rep]:
    """Each lead's owner: the rep of its latest pending or accepted handoff."""
    found = {}
    query = (Handoff.select(Handoff.lead, Rep).join(Rep)
             .where(Handoff.lead.in_(lead_ids), Handoff.status.in_(OWNING))
             .order_by(Handoff.id))
    for handoff in query:
        found[handoff.lead_id] = handoff.rep
    return found


def rep_brief(rep: Rep) -> dict:
    return {"id": rep.id, "email": rep.email, "name": rep.name}


def handoff_json(h: Handoff) -> dict:
    return {"id": h.id, "lead_id": h.lead_id, "rep": h.rep.email, "status": h.status,
            "origin": h.origin, "promoted_by": h.promoted_by,
            "promoted_at": _when(h.promoted_at), "note": h.note,
            "definition_version": h.definition.version if h.definition else None,
            "due_at": _when(h.due_at), "decided_at": _when(h.decided_at),
            "decided_by": h.decided_by, "sla_met": h.sla_met,
            "bant": {"budget": h.budget, "authority": h.authority, "need": h.need,
                     "timeline": h.timeline},
            "reason": h.reason, "outcome": h.outcome, "notes": h.notes,
            "replaces": h.replaces_id}
