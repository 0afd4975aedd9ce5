"""Handoff use cases shared by the panel and the API."""

from __future__ import annotations

import logging
from datetime import datetime

from service import lifecycle
from service.content.reasons import reject_reasons
from service.core.db import transaction
from service.core.errors import DomainError, InvalidInput, NotFound
from service.core.models import Handoff, Lead, Rep
from service.core.settings import Settings
from service.handoffs import assignment, sla
from service.nurture import sequences as nurture

log = logging.getLogger(__name__)
AUTO_ACTOR = "auto-promotion"


def promote_lead(lead_id: int, *, rep_id: int | None, note: str, actor: str, settings: Settings,
                 now: datetime, promoter: str = "") -> Handoff:
    """Promote to MQL: an explicit rep always wins, else the assignment rules choose. The
    SLA schedule follows the rep's team's policy. The promoter (default: the actor) hears
    sales' decision."""
    with transaction():
        if rep_id is None:
            lead = Lead.get_or_none(Lead.id == lead_id)
            if lead is None:
                raise NotFound(f"lead {lead_id} not found")
            rep_id = assignment.choose_rep(lead, assignment.Rules.from_settings(settings),
                                           now.date())
        return lifecycle.promote(lead_id, rep_id=rep_id, actor=actor, note=note, now=now,
                                 schedule=schedule_for(rep_id, settings, now),
                                 promoter=promoter)


def schedule_for(rep_id: int, settings: Settings, now: datetime) -> sla.Schedule:
    rep = Rep.get_or_none(Rep.id == rep_id)
    team = rep.team.name if rep is not None and rep.team_id else None
    return sla.schedule(now, sla.policy_for(settings, team))


def reassign(handoff_id: int, *, rep_id: int, actor: str, settings: Settings,
             now: datetime) -> Handoff:
    """Move a pending handoff to another rep, with a fresh SLA window."""
    return lifecycle.reassign(handoff_id, rep_id=rep_id, actor=actor, now=now,
                              schedule=schedule_for(rep_id, settings, now))


def auto_promote(lead_id: int, *, settings: Settings, now: datetime,
                 note: str = "Score crossed the MQL threshold.") -> Handoff | None:
    """Promote a lead whose score crossed the threshold, through the normal path, on behalf
    of handoff.auto_promoter. Leads that moved on (already MQL, SQL, …) or finding no rep are
    left as they are, and logged."""
    lead = Lead.get_or_none(Lead.id == lead_id)
    if lead is None or lead.stage not in (lifecycle.Stage.LEAD, lifecycle.Stage.NURTURE):
        return None
    try:
        return promote_lead(lead_id, rep_id=None, actor=AUTO_ACTOR, note=note,
                            settings=settings, now=now,
                            promoter=settings.handoff.auto_promoter)
    except DomainError as exc:
        log.info("lead %s not auto-promoted: %s", lead_id, exc.message)
        return None


def hand_over(rep_ids: list[int], *, actor: str, settings: Settings,
              now: datetime) -> tuple[int, list[str]]:
    """Reassign every pending handoff of these reps (say, gone on leave) to the next eligible
    rep of their team. Returns how many moved and a message for each that could not."""
    moved, stuck = 0, []
    pending = Handoff.select().where(Handoff.rep.in_(rep_ids),
                                     Handoff.status == lifecycle.HandoffStatus.PENDING)
    for handoff in pending.order_by(Handoff.due_at):
        try:
            with transaction():
                rep_id = assignment.next_other_rep(handoff, settings, now.date())
                if rep_id is None:
                    raise assignment.NoEligibleRep("no other rep of the team can take it")
                reassign(handoff.id, rep_id=rep_id, actor=actor, settings=settings, now=now)
            moved += 1
        except DomainError as exc:
            stuck.append(f"{handoff.lead.email}: {exc.message}")
    return moved, stuck


def reject_handoff(handoff_id: int, *, reason: str, notes: str, actor: str, settings: Settings,
                   now: datetime) -> Handoff:
    """Reject with one of the current reasons; a nurture outcome enrolls the lead in its
    sequence."""
    choice = reject_reasons().get(reason)
    if choice is None:
        raise InvalidInput(f"unknown reason {reason!r}")
    with transaction():
        handoff = lifecycle.reject(handoff_id, reason=reason, outcome=choice["outcome"],
                                   notes=notes, actor=actor, now=now)
        if choice["outcome"].startswith("nurture:"):
            nurture.enroll(handoff.lead_id, choice["outcome"].partition(":")[2],
                           settings=settings, now=now)
    return handoff


def recycle_lead(lead_id: int, *, actor: str, reason: str, settings: Settings, now: datetime):
    """sql → nurture, back into the default sequence."""
    with transaction():
        lead = lifecycle.recycle(lead_id, actor=actor, reason=reason, now=now)
        if nurture.has_sequence(settings.nurture.default_sequence):
            nurture.enroll(lead_id, settings.nurture.default_sequence, settings=settings,
                           now=now)
    return lead
