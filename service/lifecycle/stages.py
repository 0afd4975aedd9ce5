"""Lead stages (SPEC §2): the transition table, and the transitions that concern the lead
alone (capture_many, win, recycle, reopen). Every stage change, here or in a handoff transition,
is a conditional update through move() that must touch exactly one row, recorded by
record() as a StageChange row."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from types import SimpleNamespace

from service import events
from service.core.db import change_stamp, transaction
from service.core.errors import IllegalTransition, NotFound
from service.core.fastsql import insert_returning, insert_rows
from service.core.models import (
    AuditEvent,
    Lead,
    StageChange,
    new_public_id,
)
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


def capture_many(leads: list[dict], *, source: str, actor: str, now: datetime) -> dict:
    """(none) → lead for a batch of new emails; return {email: id} for those created here.
    An email that exists already is left alone (the unique index decides)."""
    if not leads:
        return {}
    blank, changed = dict.fromkeys(Lead.EDITABLE, ""), change_stamp(now)
    rows = {}  # by email, the first row of each (the one the insert keeps)
    for fields in leads:
        rows.setdefault(fields["email"], {
            **blank, **fields, "stage": Stage.LEAD, "stage_changed_at": now, "created_at": now,
            "updated_at": changed, "source": source, "public_id": new_public_id(),
            "event_sequence": 1})  # its lead.created, written below
    with transaction():
        # In the order of their emails: two recorders creating the same new leads wait for
        # each other in one order, never each for the other (a deadlock on PostgreSQL).
        inserted = insert_returning(Lead, [rows[email] for email in sorted(rows)], "email",
                                    ignore_conflicts=True)
        # Those this call inserted (RETURNING leaves out rows the unique index refused), by
        # email only: all leads of one import share created_at, and filtering on it in SQL
        # lets the planner scan every one of them.
        created = dict(Lead.select(Lead.email, Lead.id).where(Lead.email.in_(inserted)).tuples())
        insert_rows(StageChange, [
            {"lead": lead_id, "from_stage": None, "to_stage": Stage.LEAD, "at": now,
             "day": now.date(), "actor": actor, "reason": f"captured from {source}"}
            for lead_id in created.values()])
        events.created([SimpleNamespace(id=lead_id, score_log=None, **rows[email])
                        for email, lead_id in created.items()], now=now)
        mark_dirty(now.date())
    return created


def win(lead_id: int, *, actor: str, now: datetime) -> Lead:
    return _admin_move(lead_id, "win", actor, "won", now)


def recycle(lead_id: int, *, actor: str, reason: str, now: datetime) -> Lead:
    return _admin_move(lead_id, "recycle", actor, f"recycled: {reason}".strip(), now)


def reopen(lead_id: int, *, actor: str, now: datetime) -> Lead:
    return _admin_move(lead_id, "reopen", actor, "reopened", now)


def _admin_move(lead_id: int, transition: str, actor: str, reason: str, now: datetime) -> Lead:
    to_stage = next(iter(TRANSITIONS[transition][1]))
    with transaction():
        from_stage = move(lead_id, transition, now)
        record(lead_id, from_stage, to_stage, now, actor, reason)
        audit(actor, transition, f"lead:{lead_id}", {"reason": reason}, now)
    return Lead.get_by_id(lead_id)


def audit(actor: str, action: str, subject: str, details: dict, now: datetime) -> None:
    AuditEvent.create(at=now, actor=actor, action=action, subject=subject, details=details)


def move(lead_id: int, transition: str, now: datetime, to_stage: Stage | None = None) -> str:
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


def record(lead_id: int, from_stage, to_stage, now: datetime, actor: str, reason: str,
           handoff_id: int | None = None) -> None:
    """The stage change's history row and its events (about the handoff that made it)."""
    StageChange.create(lead=lead_id, from_stage=from_stage, to_stage=to_stage, at=now,
                       day=now.date(), actor=actor, reason=reason)
    events.stage_changed(lead_id, from_stage, to_stage, now=now, handoff_id=handoff_id)
    mark_dirty(now.date())
