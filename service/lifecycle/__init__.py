"""The lead lifecycle (SPEC §2). One function per transition, each one transaction, each a
conditional update that must touch exactly one row, each writing a StageChange row."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import peewee
from peewee import Case, fn

from service.core import outbox
from service.core.db import insert_rows, transaction
from service.core.errors import AlreadyDecided, IllegalTransition, InvalidInput, NotFound
from service.core.models import (
    AuditEvent,
    Definition,
    Handoff,
    Lead,
    Rep,
    StageChange,
    new_public_id,
)
from service.handoffs.sla import Schedule
from service.nurture.suppression import stop_enrollments
from service.reports.rollups import mark_dirty


class Stage(StrEnum):
    LEAD = "lead"
    MQL = "mql"
    SQL = "sql"
    NURTURE = "nurture"
    DISQUALIFIED = "disqualified"
    CUSTOMER = "customer"


TRANSITIONS: dict[str, tuple[frozenset, frozenset]] = {
    "capture": (frozenset({None}), frozenset({Stage.LEAD})),
    "promote": (frozenset({Stage.LEAD, Stage.NURTURE}), frozenset({Stage.MQL})),
    "accept": (frozenset({Stage.MQL}), frozenset({Stage.SQL})),
    "reject": (frozenset({Stage.MQL}), frozenset({Stage.NURTURE, Stage.DISQUALIFIED})),
    "withdraw": (frozenset({Stage.MQL}), frozenset({Stage.LEAD, Stage.NURTURE})),
    "take_over": (frozenset({Stage.LEAD, Stage.NURTURE}), frozenset({Stage.MQL})),
    "register_outbound": (frozenset({None, Stage.LEAD, Stage.NURTURE}), frozenset({Stage.SQL})),
    "win": (frozenset({Stage.SQL}), frozenset({Stage.CUSTOMER})),
    "recycle": (frozenset({Stage.SQL}), frozenset({Stage.NURTURE})),
    "reopen": (frozenset({Stage.DISQUALIFIED}), frozenset({Stage.LEAD})),
}

BANT = {
    "budget": ("confirmed", "likely", "none", "unknown"),
    "authority": ("decision_maker", "influencer", "none", "unknown"),
    "need": ("clear", "emerging", "none", "unknown"),
    "timeline": ("lt_3m", "3_6m", "6_12m", "gt_12m", "none", "unknown"),
}


class LeadExists(InvalidInput):
    code = "lead_exists"


def capture(email: str, *, fields: dict, source: str, actor: str, now: datetime) -> Lead:
    """(none) → lead. Raises LeadExists when the email is known (the unique index decides)."""
    try:
        with transaction():
            lead = Lead.create(email=email, stage=Stage.LEAD, stage_changed_at=now,
                               created_at=now, updated_at=now, source=source, **fields)
            _record(lead.id, None, Stage.LEAD, now, actor, f"captured from {source}")
    except peewee.IntegrityError:
        raise LeadExists(f"a lead with email {email} exists") from None
    return lead


def capture_many(leads: list[dict], *, source: str, actor: str, now: datetime) -> dict:
    """(none) → lead for a batch of new emails; return {email: id} for those created here.
    An email that exists already is left alone (the unique index decides)."""
    if not leads:
        return {}
    blank = dict.fromkeys(Lead.EDITABLE, "")
    with transaction():
        insert_rows(Lead, [{**blank, **fields, "stage": Stage.LEAD, "stage_changed_at": now,
                            "created_at": now, "updated_at": now, "source": source,
                            "public_id": new_public_id()}
                           for fields in leads], ignore_conflicts=True)
        # Look up by email only (the unique index): all leads of one import share created_at,
        # and filtering on it in SQL lets the planner scan every one of them.
        found = Lead.select(Lead.email, Lead.id, Lead.created_at, Lead.source).where(
            Lead.email.in_([fields["email"] for fields in leads])).tuples()
        created = {email: lead_id for email, lead_id, at, origin in found
                   if at == now and origin == source}
        insert_rows(StageChange, [
            {"lead": lead_id, "from_stage": None, "to_stage": Stage.LEAD, "at": now,
             "day": now.date(), "actor": actor, "reason": f"captured from {source}"}
            for lead_id in created.values()])
        mark_dirty(now.date())
    return created


def promote(lead_id: int, *, rep_id: int, actor: str, note: str, now: datetime,
            schedule: Schedule, promoter: str = "") -> Handoff:
    """lead, nurture → mql, with a pending handoff to the rep and the rep's email queued.
    The promoter (default: the actor) is who hears sales' decision: a user, or the person
    an API key or the automatic promotion acts for."""
    rep = Rep.get_or_none(Rep.id == rep_id)
    if rep is None or not rep.active:
        raise InvalidInput(f"rep {rep_id} does not exist or is not active")
    with transaction():
        from_stage = _move(lead_id, "promote", now)
        lead = Lead.get_by_id(lead_id)
        try:
            handoff = Handoff.create(
                lead=lead_id, rep=rep.id, promoted_by=promoter or actor, promoted_at=now,
                note=note, promoted_day=now.date(), definition=Definition.current("mql"),
                first_due_at=schedule.due_at, **lead_facts(lead, now), **sla_fields(schedule))
        except peewee.IntegrityError:
            raise IllegalTransition(f"lead {lead_id} already has a pending handoff") from None
        _record(lead_id, from_stage, Stage.MQL, now, actor, "promoted")
        stop_enrollments(lead_id, reason="promoted", now=now)
        outbox.queue_email("rep_handoff", to_address=rep.email, to_name=rep.name,
                           lead_id=lead_id, handoff_id=handoff.id, now=now)
    return handoff


def accept(handoff_id: int, *, bant: dict, notes: str, actor: str, now: datetime,
           requires: list[str]) -> Handoff:
    """mql → sql: the rep accepts the handoff with BANT answers."""
    answers = check_bant(bant, requires)
    with transaction():
        lead_id = _decide(handoff_id, "accepted", now, actor, notes=notes, **answers)
        _move(lead_id, "accept", now)
        _record(lead_id, Stage.MQL, Stage.SQL, now, actor, "accepted")
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
        lead_id = _decide(handoff_id, "rejected", now, actor, notes=notes, reason=reason,
                          outcome=outcome)
        _move(lead_id, "reject", now, to_stage)
        _record(lead_id, Stage.MQL, to_stage, now, actor, f"rejected: {reason}")
        _feedback(handoff_id, now)
    return Handoff.get_by_id(handoff_id)


def withdraw(handoff_id: int, *, actor: str, reason: str, now: datetime) -> Handoff:
    """A pending handoff is taken back: the lead returns to the stage it was promoted from."""
    with transaction():
        lead_id = _decide(handoff_id, "withdrawn", now, actor, notes=reason)
        Handoff.update(sla_met=None).where(Handoff.id == handoff_id).execute()
        to_stage = _stage_before_mql(lead_id)
        _move(lead_id, "withdraw", now, to_stage)
        _record(lead_id, Stage.MQL, to_stage, now, actor, f"handoff withdrawn: {reason}".strip())
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
            moved = (Handoff.update(lead=lead_id)
                     .where(Handoff.id == handoff_id, Handoff.status == "pending",
                            Handoff.lead == handoff.lead_id).execute())
        except peewee.IntegrityError:
            raise IllegalTransition(f"lead {lead_id} already has a pending handoff") from None
        if moved != 1:
            raise AlreadyDecided(already_decided_message(Handoff.get_by_id(handoff_id)))
        from_stage = _move(lead_id, "take_over", now)
        _record(lead_id, from_stage, Stage.MQL, now, actor,
                f"merged: took over the handoff of {duplicate}")
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
        _decide(handoff_id, "withdrawn", now, actor, reassigned_at=now,
                notes=f"reassigned to {rep.email}")
        Handoff.update(sla_met=None).where(Handoff.id == handoff_id).execute()
        new = Handoff.create(lead=old.lead_id, rep=rep.id, promoted_by=old.promoted_by,
                             promoted_at=old.promoted_at, promoted_day=old.promoted_day,
                             first_due_at=old.first_due_at or old.due_at, note=old.note,
                             definition=old.definition_id, replaces=old.id,
                             lead_source=old.lead_source, lead_age_minutes=old.lead_age_minutes,
                             **sla_fields(schedule))
        outbox.queue_email("rep_handoff", to_address=rep.email, to_name=rep.name,
                           lead_id=old.lead_id, handoff_id=new.id, now=now)
        outbox.queue_email("handoff_moved", to_address=old.rep.email, to_name=old.rep.name,
                           lead_id=old.lead_id, handoff_id=old.id, now=now)
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
            from_stage = _move(lead.id, "register_outbound", now)
        _record(lead.id, from_stage, Stage.SQL, now, actor, "outbound SQL")
        stop_enrollments(lead.id, reason="sql", now=now)
        handoff = Handoff.create(
            lead=lead.id, rep=rep.id, promoted_by=actor, promoted_at=now, due_at=now,
            **lead_facts(lead, now),
            promoted_day=now.date(), decided_day=now.date(), decision_minutes=0,
            status="accepted", decided_at=now, decided_by=actor, notes=notes,
            origin="outbound", definition=Definition.current("mql"), **answers)
        audit(actor, "register_outbound", f"lead:{lead.id}", {"rep": rep.email}, now)
    return handoff


def win(lead_id: int, *, actor: str, now: datetime) -> Lead:
    return _admin_move(lead_id, "win", actor, "won", now)


def recycle(lead_id: int, *, actor: str, reason: str, now: datetime) -> Lead:
    return _admin_move(lead_id, "recycle", actor, f"recycled: {reason}".strip(), now)


def reopen(lead_id: int, *, actor: str, now: datetime) -> Lead:
    return _admin_move(lead_id, "reopen", actor, "reopened", now)


def _admin_move(lead_id: int, transition: str, actor: str, reason: str, now: datetime) -> Lead:
    to_stage = next(iter(TRANSITIONS[transition][1]))
    with transaction():
        from_stage = _move(lead_id, transition, now)
        _record(lead_id, from_stage, to_stage, now, actor, reason)
        audit(actor, transition, f"lead:{lead_id}", {"reason": reason}, now)
    return Lead.get_by_id(lead_id)


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


def audit(actor: str, action: str, subject: str, details: dict, now: datetime) -> None:
    AuditEvent.create(at=now, actor=actor, action=action, subject=subject, details=details)


def lead_facts(lead: Lead, now: datetime) -> dict:
    """What the reports need of the lead, kept on the handoff so they never join leads."""
    return {"lead_source": lead.source,
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


def _move(lead_id: int, transition: str, now: datetime, to_stage: Stage | None = None) -> str:
    """Conditionally move the lead along a transition; return the stage it left."""
    sources, targets = TRANSITIONS[transition]
    to_stage = to_stage or next(iter(targets))
    lead = Lead.get_or_none(Lead.id == lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    moved = (Lead.update(stage=to_stage, stage_changed_at=now, updated_at=now)
             .where(Lead.id == lead_id, Lead.stage == lead.stage,
                    Lead.stage.in_([s.value for s in sources if s]))
             .execute())
    if moved != 1:
        verb = transition.replace("_", " ")
        raise IllegalTransition(f"cannot {verb} a lead in stage {lead.stage}")
    return lead.stage


def _decide(handoff_id: int, status: str, now: datetime, actor: str, **fields) -> int:
    """pending → status, exactly once; return the lead id. SLA met means decided by the
    episode's first deadline; a step closed after its own deadline has lapsed."""
    at = Handoff.due_at.to_value(now)  # stored as the column stores it
    first_due = fn.COALESCE(Handoff.first_due_at, Handoff.due_at)
    lapsed = Case(None, [(Handoff.lapsed_at.is_null() & (Handoff.due_at < now), at)],
                  Handoff.lapsed_at)
    decided = (Handoff.update(status=status, decided_at=now, decided_by=actor,
                              sla_met=(first_due >= at), lapsed_at=lapsed, **fields)
               .where(Handoff.id == handoff_id, Handoff.status == "pending")
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


def _record(lead_id: int, from_stage, to_stage, now: datetime, actor: str, reason: str) -> None:
    StageChange.create(lead=lead_id, from_stage=from_stage, to_stage=to_stage, at=now,
                       day=now.date(), actor=actor, reason=reason)
    mark_dirty(now.date())
