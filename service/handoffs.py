"""Handoff use cases shared by the panel and the API."""

from __future__ import annotations

import logging
from datetime import datetime

from . import assignment, lifecycle, sla
from .db import transaction
from .errors import DomainError, NotFound
from .models import Handoff, Lead

log = logging.getLogger(__name__)
AUTO_ACTOR = "auto-promotion"


def promote_lead(lead_id: int, *, rep_id: int | None, note: str, actor: str, settings: dict,
                 now: datetime) -> Handoff:
    """Promote to MQL: an explicit rep always wins, else the assignment rules choose."""
    due = sla.due_at(now, settings["sla.decision_hours"])
    with transaction():
        if rep_id is None:
            lead = Lead.get_or_none(Lead.id == lead_id)
            if lead is None:
                raise NotFound(f"lead {lead_id} not found")
            rep_id = assignment.choose_rep(lead, assignment.Rules.from_settings(settings),
                                           now.date())
        return lifecycle.promote(lead_id, rep_id=rep_id, actor=actor, note=note, now=now,
                                 due_at=due)


def auto_promote(lead_id: int, *, settings: dict, now: datetime) -> Handoff | None:
    """Promote a lead whose score crossed the threshold, through the normal path. Leads that
    moved on (already MQL, SQL, …) or finding no rep are left as they are, and logged."""
    lead = Lead.get_or_none(Lead.id == lead_id)
    if lead is None or lead.stage not in (lifecycle.Stage.LEAD, lifecycle.Stage.NURTURE):
        return None
    try:
        return promote_lead(lead_id, rep_id=None, actor=AUTO_ACTOR,
                            note="Score crossed the MQL threshold.", settings=settings, now=now)
    except DomainError as exc:
        log.info("lead %s not auto-promoted: %s", lead_id, exc.message)
        return None
