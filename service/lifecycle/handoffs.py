"""Handoff transitions: promotion opens a pending handoff; accept, reject, withdraw and
reassign close it, each exactly once (a conditional update on the status the table allows),
each moving the lead's stage in the same transaction; a merge's take-over moves it, still
pending, to another lead. A decided handoff never changes status again."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import peewee
from peewee import Case, fn

from service import events
from service.core import outbox
from service.core.db import transaction
from service.core.errors import AlreadyDecided, IllegalTransition, InvalidInput, NotFound
from service.core.models import Definition, Handoff, Lead, Rep, StageChange
from service.core.statuses import HandoffStatus
from service.lifecycle.enrollments import stop_enrollments
from service.lifecycle.stages import Stage, audit, move, record
from service.reports.rollups import mark_dirty

if TYPE_CHECKING:  # the SLA clock computes schedules; a transition only stores one
    from service.handoffs.sla import Schedule


PENDING = HandoffStatus.PENDING

HANDOFF_TRANSITIONS: dict[str, tuple[frozenset, frozenset]] = {
    "promote": (frozenset({None}), frozenset({PENDING})),
    "accept": (frozenset({PENDING}), frozenset({HandoffStatus.ACCEPTED})),
    "reject": (frozenset({PENDING}), frozenset({HandoffStatus.REJECTED})),
    "withdraw": (frozenset({PENDING}), frozenset({HandoffStatus.WITHDRAWN})),
    "reassign": (frozenset({PENDING}), frozenset({HandoffStatus.WITHDRAWN})),  # + a new one
    "take_over": (frozenset({PENDING}), frozenset({PENDING})),
    "register_outbound": (frozenset({None}), frozenset({HandoffStatus.ACCEPTED})),
}

BANT = {
    "budget": ("confirmed", "likely", "none", "unknown"),
    "authority": ("decision_maker", "influencer", "none", "unknown"),
    "need": ("clear", "emerging", "none", "unknown"),
    "timeline": ("lt_3m", "3_6m", "6_12m", "gt_12m", "none", "unknown"),
}


def promote(lead_id: int, *, rep_id: int, actor: str, note: str, now: datetime,
            schedule: Schedule, promoter: str = "") -> Handoff:
    """lead, nurture → mql, with a pending handoff to the rep and the rep's email queued.
    The promoter (default: the actor) is who hears sales' decision: a user, or the person
    an API key or the automatic promotion acts for."""
    rep = Rep.get_or_none(Rep.id == rep_id)
    if rep is None or not rep.active:
        raise InvalidInput(f"rep {rep_id} does not exist or is not active")
    with transaction():
        from_stage = move(lead_id, "promote", now)
        lead = Lead.get_by_id(lead_id)
        try:
            handoff = Handoff.create(
                lead=lead_id, rep=rep.id, promoted_by=promoter or actor, promoted_at=now,
                note=note, promoted_day=now.date(), definition=Definition.current("mql"),
                status=_target("promote"),
                first_due_at=schedule.due_at, **lead_facts(lead, now), **sla_fields(schedule))
        except peewee.IntegrityError:
            raise IllegalTransition(f"lead {lead_id} already has a pending handoff") from None
        record(lead_id, from_stage, Stage.MQL, now, actor, "promoted", handoff.id)
        stop_enrollments(lead_id, reason="promoted", now=now)
        outbox.queue_email("rep_handoff", to_address=rep.email, to_name=rep.name,
                           lead_id=lead_id, handoff_id=handoff.id, now=now)
    return handoff


def accept(handoff_id: int, *, bant: dict, notes: str, actor: str, now: datetime,
           requires: list[str]) -> Handoff:
    """mql → sql: the rep accepts the handoff with BANT answers."""
    answers = check_bant(bant, requires)
    with transaction():
        lead_id = _decide(handoff_id, "accept", now, actor, notes=notes, **answers)
        move(lead_id, "accept", now)
        events.emit("handoff.accepted", lead_id, now=now, handoff_id=handoff_id)
        record(lead_id, Stage.MQL, Stage.SQL, now, actor, "accepted", handoff_id)
        stop_enrollments(lead_id, reason="sql", now=now)
        _feedback(handoff_id, now)
    return Handoff.get_by_id(handoff_id)


def reject(handoff_id: int, *, reason: str, outcome: str, notes: str, actor: str,
           now: datetime) -> Handoff:
    """mql → nurture or disqualified, as the reason's configured outcome says."""
    to_stage = Stage.DISQUALIFIED if outcome == "disqualify" else Stage.NURTURE
    if not reason:
        raise InvalidInput("choose a reason")
    with transaction():
        lead_id = _decide(handoff_id, "reject", now, actor, notes=notes, reason=reason,
                          outcome=outcome)
        move(lead_id, "reject", now, to_stage)
        events.emit("handoff.rejected", lead_id, now=now, handoff_id=handoff_id)
        record(lead_id, Stage.MQL, to_stage, now, actor, f"rejected: {reason}", handoff_id)
        _feedback(handoff_id, now)
    return Handoff.get_by_id(handoff_id)


def withdraw(handoff_id: int, *, actor: str, reason: str, now: datetime) -> Handoff:
    """A pending handoff is taken back: the lead returns to the stage it was promoted from."""
    with transaction():
        lead_id = _decide(handoff_id, "withdraw", now, actor, notes=reason)
        Handoff.update(sla_met=None).where(Handoff.id == handoff_id).execute()
        to_stage = _stage_before_mql(lead_id)
        move(lead_id, "withdraw", now, to_stage)
        record(lead_id, Stage.MQL, to_stage, now, actor, f"handoff withdrawn: {reason}".strip(),
               handoff_id)
        audit(actor, "withdraw", f"handoff:{handoff_id}", {"reason": reason}, now)
    return Handoff.get_by_id(handoff_id)


def take_over(handoff_id: int, *, lead_id: int, actor: str, now: datetime) -> Handoff:
    """lead, nurture → mql for a lead taking over the pending handoff of a duplicate merged
    into it: the handoff moves to this lead still pending, with its rep, links and SLA."""
    with transaction():
        handoff = Handoff.get_or_none(Handoff.id == handoff_id)
        if handoff is None:
            raise NotFound(f"handoff {handoff_id} not found")
        duplicate = handoff.lead.email
        try:
            moved = (Handoff.update(lead=lead_id, status=_target("take_over"))
                     .where(Handoff.id == handoff_id, _from("take_over"),
                            Handoff.lead == handoff.lead_id).execute())
        except peewee.IntegrityError:
            raise IllegalTransition(f"lead {lead_id} already has a pending handoff") from None
        if moved != 1:
            raise AlreadyDecided(already_decided_message(Handoff.get_by_id(handoff_id)))
        from_stage = move(lead_id, "take_over", now)
        record(lead_id, from_stage, Stage.MQL, now, actor,
               f"merged: took over the handoff of {duplicate}", handoff_id)
        stop_enrollments(lead_id, reason="merged", now=now)
    return Handoff.get_by_id(handoff_id)


def reassign(handoff_id: int, *, rep_id: int, actor: str, now: datetime,
             schedule: Schedule) -> Handoff:
    """Move a pending handoff to another rep: the old one is closed (its links die), a new one
    replaces it with a fresh SLA window. The lead stays an MQL, in the same episode: the new
    handoff keeps the promotion time and the first deadline."""
    rep = Rep.get_or_none(Rep.id == rep_id)
    if rep is None or not rep.active:
        raise InvalidInput(f"rep {rep_id} does not exist or is not active")
    with transaction():
        old = Handoff.get_or_none(Handoff.id == handoff_id)
        if old is None:
            raise NotFound(f"handoff {handoff_id} not found")
        if old.rep_id == rep_id:
            raise InvalidInput(f"the handoff is already with {rep.email}")
        _decide(handoff_id, "reassign", now, actor, reassigned_at=now,
                notes=f"reassigned to {rep.email}")
        Handoff.update(sla_met=None).where(Handoff.id == handoff_id).execute()
        new = Handoff.create(lead=old.lead_id, rep=rep.id, promoted_by=old.promoted_by,
                             status=PENDING,
                             promoted_at=old.promoted_at, promoted_day=old.promoted_day,
                             first_due_at=old.first_due_at or old.due_at, note=old.note,
                             definition=old.definition_id, replaces=old.id,
                             lead_source=old.lead_source, lead_age_minutes=old.lead_age_minutes,
                             lead_utm_source=old.lead_utm_source,
                             lead_utm_campaign=old.lead_utm_campaign,
                             **sla_fields(schedule))
        outbox.queue_email("rep_handoff", to_address=rep.email, to_name=rep.name,
                           lead_id=old.lead_id, handoff_id=new.id, now=now)
        outbox.queue_email("handoff_moved", to_address=old.rep.email, to_name=old.rep.name,
                           lead_id=old.lead_id, handoff_id=old.id, now=now)
        events.emit("handoff.reassigned", old.lead_id, now=now, handoff_id=new.id)
        audit(actor, "reassign", f"handoff:{handoff_id}",
              {"from": old.rep.email, "to": rep.email, "new_handoff": new.id}, now)
    return new


def register_outbound(email: str, *, fields: dict, rep_id: int, bant: dict, notes: str,
                      actor: str, now: datetime) -> Handoff:
    """(none), lead, nurture → sql for an SQL sales found itself; BANT is required."""
    answers = check_bant(bant, list(BANT))
    rep = Rep.get_or_none(Rep.id == rep_id)
    if rep is None:
        raise InvalidInput(f"rep {rep_id} does not exist")
    with transaction():
        lead = Lead.get_or_none(Lead.email == email)
        if lead is None:
            try:
                with transaction():
                    lead = Lead.create(email=email, stage=Stage.SQL, stage_changed_at=now,
                                       created_at=now, updated_at=now, source="outbound",
                                       **fields)
            except peewee.IntegrityError:
                raise IllegalTransition(f"{email} was just captured; try again") from None
            from_stage = None
        else:
            from_stage = move(lead.id, "register_outbound", now)
        stop_enrollments(lead.id, reason="sql", now=now)
        handoff = Handoff.create(
            lead=lead.id, rep=rep.id, promoted_by=actor, promoted_at=now, due_at=now,
            **lead_facts(lead, now),
            promoted_day=now.date(), decided_day=now.date(), decision_minutes=0,
            status=_target("register_outbound"), decided_at=now, decided_by=actor, notes=notes,
            origin="outbound", definition=Definition.current("mql"), **answers)
        record(lead.id, from_stage, Stage.SQL, now, actor, "outbound SQL", handoff.id)
        audit(actor, "register_outbound", f"lead:{lead.id}", {"rep": rep.email}, now)
    return handoff


def _stage_before_mql(lead_id: int) -> Stage:
    promotion = (StageChange.select().where(StageChange.lead == lead_id,
                                            StageChange.to_stage == Stage.MQL)
                 .order_by(StageChange.at.desc(), StageChange.id.desc()).first())
    if promotion and promotion.from_stage == Stage.NURTURE:
        return Stage.NURTURE
    return Stage.LEAD


def _feedback(handoff_id: int, now: datetime) -> None:
    """Tell the promoting marketer what sales decided (not for automatic promotions)."""
    handoff = Handoff.get_by_id(handoff_id)
    if "@" in handoff.promoted_by:
        outbox.queue_email("decision_feedback", to_address=handoff.promoted_by,
                           lead_id=handoff.lead_id, handoff_id=handoff_id, now=now)


def lead_facts(lead: Lead, now: datetime) -> dict:
    """What the reports need of the lead, kept on the handoff so they never join leads."""
    return {"lead_source": lead.source, "lead_utm_source": lead.utm_source,
            "lead_utm_campaign": lead.utm_campaign,
            "lead_age_minutes": int((now - lead.created_at).total_seconds() // 60)}


def sla_fields(schedule: Schedule) -> dict:
    return {"due_at": schedule.due_at, "remind_due_at": schedule.remind_at,
            "escalate_due_at": schedule.escalate_at, "reassign_due_at": schedule.reassign_at,
            "sla_next_at": schedule.next_action_at(set())}


def check_bant(bant: dict, requires: list[str]) -> dict:
    answers = {}
    for field, choices in BANT.items():
        value = bant.get(field) or "unknown"
        if value not in choices:
            raise InvalidInput(f"{field} must be one of {', '.join(choices)}")
        if field in requires and value == "unknown":
            raise InvalidInput(f"{field} is required to accept this lead")
        answers[field] = value
    return answers


def _decide(handoff_id: int, transition: str, now: datetime, actor: str, **fields) -> int:
    """pending → the transition's status, exactly once; return the lead id. SLA met means
    decided by the episode's first deadline; a step closed after its own deadline has
    lapsed."""
    at = Handoff.due_at.to_value(now)  # stored as the column stores it
    first_due = fn.COALESCE(Handoff.first_due_at, Handoff.due_at)
    lapsed = Case(None, [(Handoff.lapsed_at.is_null() & (Handoff.due_at < now), at)],
                  Handoff.lapsed_at)
    decided = (Handoff.update(status=_target(transition), decided_at=now, decided_by=actor,
                              sla_met=(first_due >= at), lapsed_at=lapsed, **fields)
               .where(Handoff.id == handoff_id, _from(transition))
               .execute())
    handoff = Handoff.get_or_none(Handoff.id == handoff_id)
    if handoff is None:
        raise NotFound(f"handoff {handoff_id} not found")
    if decided != 1:
        raise AlreadyDecided(already_decided_message(handoff))
    minutes = int((now - handoff.promoted_at).total_seconds() // 60)
    Handoff.update(decided_day=now.date(), decision_minutes=minutes).where(
        Handoff.id == handoff_id).execute()
    mark_dirty(now.date(), handoff.promoted_day)
    return handoff.lead_id


def already_decided_message(handoff: Handoff) -> str:
    when = handoff.decided_at.strftime("%Y-%m-%d %H:%M UTC") if handoff.decided_at else ""
    return f"already decided: {handoff.status} by {handoff.decided_by or 'someone'} {when}".strip()


def _from(transition: str) -> peewee.Expression:
    """The handoff stands where the transition starts (every one but creation: pending)."""
    (source,) = HANDOFF_TRANSITIONS[transition][0]
    return Handoff.status == source


def _target(transition: str) -> HandoffStatus:
    return next(iter(HANDOFF_TRANSITIONS[transition][1]))
