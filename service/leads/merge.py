"""Merging duplicate leads: everything moves to the survivor, through the lifecycle where a
stage or a handoff changes, and the merge is recorded."""

from __future__ import annotations

from datetime import datetime

from playhouse.shortcuts import model_to_dict

from service import lifecycle
from service.core.db import lock, transaction
from service.core.errors import InvalidInput, NotFound
from service.core.models import (
    Activity,
    Enrollment,
    Handoff,
    Identity,
    Lead,
    LeadMerge,
    OutboxEmail,
    StageChange,
)
from service.leads.scoring import add_logs
from service.lifecycle import HandoffStatus, Stage
from service.reports.rollups import mark_dirty, mark_lead_dirty

CAN_TAKE_OVER = (Stage.LEAD, Stage.NURTURE)
NO_NURTURE = (Stage.MQL, Stage.SQL, Stage.CUSTOMER, Stage.DISQUALIFIED)


def merge_leads(survivor_id: int, merged_id: int, *, actor: str, now: datetime) -> Lead:
    """Merge the duplicate `merged_id` into `survivor_id`, in one transaction.

    The merged lead's pending handoff is carried over when the survivor can take it: the
    survivor is at `lead` or `nurture` and has no pending handoff of its own. The survivor
    then becomes an MQL (lifecycle.take_over) and the handoff, still pending, stays with its
    rep, links and SLA. Otherwise (the survivor is an MQL, SQL, customer or disqualified) the
    handoff is withdrawn, "merged into <survivor email>": its links show it withdrawn and
    the SLA sweep leaves it alone.

    The merged lead's enrollments move to the survivor. Only one sequence runs at a time:
    when the survivor runs one, the merged lead's are stopped ("merged"); at a stage where
    nurture must not run (mql, sql, customer, disqualified) every active one is stopped.
    Activities, handoffs, emails, identities, stage history and earlier merges move as they
    are; blank fields are filled from the merged lead, which is then deleted."""
    if survivor_id == merged_id:
        raise InvalidInput("choose two different leads to merge")
    with transaction():
        for lead_id in sorted((survivor_id, merged_id)):
            lock(f"merge:lead:{lead_id}")
        survivor = Lead.get_or_none(Lead.id == survivor_id)
        merged = Lead.get_or_none(Lead.id == merged_id)
        if survivor is None or merged is None:
            raise NotFound("one of the leads no longer exists")
        mark_lead_dirty(merged_id)
        handoff = _settle_handoff(survivor, merged, actor, now)
        stage = Lead.get_by_id(survivor_id).stage
        moved = _move_enrollments(survivor_id, merged_id, stage, now)
        _move_history(survivor_id, merged_id)
        _absorb(survivor, merged, now)
        LeadMerge.create(survivor=survivor_id, merged_id=merged_id, merged_email=merged.email,
                         merged_public_id=merged.public_id,
                         snapshot=model_to_dict(merged, recurse=False), actor=actor, at=now)
        if Lead.delete().where(Lead.id == merged_id).execute() != 1:
            raise NotFound("one of the leads no longer exists")
        lifecycle.audit(actor, "merge", f"lead:{survivor_id}", {
            "survivor": survivor.email, "merged": merged.email, "merged_id": merged_id,
            "handoff": handoff, "enrollments": {
                "moved": moved, "stopped": _stopped_by_merge(survivor_id, now)}}, now)
        mark_dirty(now.date())  # one lead fewer in the stage counts
    return Lead.get_by_id(survivor_id)


def _settle_handoff(survivor: Lead, merged: Lead, actor: str, now: datetime) -> dict | None:
    """Carry the merged lead's pending handoff over to the survivor, or withdraw it."""
    pending = Handoff.get_or_none(Handoff.lead == merged.id,
                                  Handoff.status == HandoffStatus.PENDING)
    if pending is None:
        return None
    survivor_busy = Handoff.select().where(Handoff.lead == survivor.id,
                                           Handoff.status == HandoffStatus.PENDING).exists()
    if survivor.stage in CAN_TAKE_OVER and not survivor_busy:
        lifecycle.take_over(pending.id, lead_id=survivor.id, actor=actor, now=now)
        return {"id": pending.id, "outcome": "carried over", "rep": pending.rep.email}
    lifecycle.withdraw(pending.id, actor=actor, reason=f"merged into {survivor.email}", now=now)
    return {"id": pending.id, "outcome": "withdrawn", "rep": pending.rep.email}


def _move_enrollments(survivor_id: int, merged_id: int, stage: str, now: datetime) -> int:
    """Move the merged lead's enrollments; return how many moved."""
    lifecycle.stop_merged_duplicates(merged_id, survivor_id=survivor_id, now=now)
    moved = Enrollment.update(lead=survivor_id).where(Enrollment.lead == merged_id).execute()
    if stage in NO_NURTURE:
        lifecycle.stop_enrollments(survivor_id, reason="merged", now=now)
    return moved


def _stopped_by_merge(survivor_id: int, now: datetime) -> int:
    return Enrollment.select().where(Enrollment.lead == survivor_id,
                                     Enrollment.stop_reason == "merged",
                                     Enrollment.updated_at == now).count()


def _move_history(survivor_id: int, merged_id: int) -> None:
    for model in (Activity, Handoff, StageChange, OutboxEmail, Identity):
        model.update(lead=survivor_id).where(model.lead == merged_id).execute()
    LeadMerge.update(survivor=survivor_id).where(LeadMerge.survivor == merged_id).execute()


def _absorb(survivor: Lead, merged: Lead, now: datetime) -> None:
    """Fill the survivor's blank fields from the merged lead and add up their scores."""
    filled = {name: getattr(merged, name) for name in Lead.EDITABLE
              if not getattr(survivor, name) and getattr(merged, name)}
    updated = (Lead.update(**filled, score_log=add_logs(survivor.score_log, merged.score_log),
                           updated_at=now).where(Lead.id == survivor.id).execute())
    if updated != 1:
        raise NotFound("one of the leads no longer exists")
