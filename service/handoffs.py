"""Handoff use cases shared by the panel and the API."""

from __future__ import annotations

from datetime import datetime

from . import lifecycle, sla
from .models import Handoff


def promote_lead(lead_id: int, *, rep_id: int, note: str, actor: str, settings: dict,
                 now: datetime) -> Handoff:
    due = sla.due_at(now, settings["sla.decision_hours"])
    return lifecycle.promote(lead_id, rep_id=rep_id, actor=actor, note=note, now=now, due_at=due)
