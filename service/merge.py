"""Merging duplicate leads: everything moves to the survivor, and the merge is recorded."""

from __future__ import annotations

from datetime import datetime

from playhouse.shortcuts import model_to_dict

from .db import transaction
from .errors import InvalidInput, NotFound
from .models import Activity, Handoff, Identity, Lead, LeadMerge, OutboxEmail, StageChange
from .rollups import mark_dirty
from .scoring import add_logs


def merge_leads(survivor_id: int, merged_id: int, *, actor: str, now: datetime) -> Lead:
    if survivor_id == merged_id:
        raise InvalidInput("choose two different leads to merge")
    with transaction():
        survivor = Lead.get_or_none(Lead.id == survivor_id)
        merged = Lead.get_or_none(Lead.id == merged_id)
        if survivor is None or merged is None:
            raise NotFound("one of the leads no longer exists")
        pending = Handoff.select().where(Handoff.lead.in_([survivor_id, merged_id]),
                                         Handoff.status == "pending").count()
        if pending > 1:
            raise InvalidInput("both leads have a pending handoff: decide or withdraw one first")
        for model in (Activity, Handoff, StageChange, OutboxEmail, Identity):
            model.update(lead=survivor_id).where(model.lead == merged_id).execute()
        filled = {name: getattr(merged, name) for name in Lead.EDITABLE
                  if not getattr(survivor, name) and getattr(merged, name)}
        Lead.update(**filled, score_log=add_logs(survivor.score_log, merged.score_log),
                    updated_at=now).where(Lead.id == survivor_id).execute()
        # the merged lead's links, and those of leads merged into it before, now name the survivor
        LeadMerge.update(survivor=survivor_id).where(LeadMerge.survivor == merged_id).execute()
        LeadMerge.create(survivor=survivor_id, merged_id=merged_id, merged_email=merged.email,
                         merged_public_id=merged.public_id,
                         snapshot=model_to_dict(merged, recurse=False), actor=actor, at=now)
        Lead.delete().where(Lead.id == merged_id).execute()
        mark_dirty(now.date())  # one lead fewer in the stage counts
    return Lead.get_by_id(survivor_id)
