"""The SLA sweep: reminders, escalations and reassignments that have fallen due. Pending
handoffs are found through one indexed column (sla_next_at); each action is claimed with a
conditional update in the same transaction that writes its emails, so sweeps that overlap
or repeat never send twice."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from peewee import JOIN

from service import events
from service.core import outbox
from service.core.db import transaction
from service.core.errors import DomainError
from service.core.fastsql import update_from_values
from service.core.models import AuditEvent, Handoff, Rep, Team
from service.core.settings import Settings
from service.handoffs import actions as handoffs
from service.handoffs import assignment
from service.handoffs.sla import Schedule, due_actions
from service.lifecycle import HandoffStatus, audit
from service.reports.rollups import mark_dirty

log = logging.getLogger(__name__)
CHUNK = 500
RETRY = timedelta(minutes=1)
SLA_ACTOR = "sla"
PENDING = HandoffStatus.PENDING
STAMP = {"remind": Handoff.reminded_at, "lapse": Handoff.lapsed_at,
         "escalate": Handoff.escalated_at, "reassign": Handoff.reassigned_at}
SCHEDULE = (Handoff.due_at, Handoff.remind_due_at, Handoff.escalate_due_at,
            Handoff.reassign_due_at)


def sweep(*, settings: Settings, now: datetime, max_rounds: int = 100) -> Counter:
    """Carry out every SLA action due at `now`; return how many of each this call did."""
    done: Counter = Counter()
    for _ in range(max_rounds):
        rows = due(now, CHUNK)
        if not rows:
            break
        with transaction():
            _remind_and_escalate(rows, settings, now, done)
        for row in rows:
            if "reassign" in due_actions(row["schedule"], row["done"], now):
                done["reassign"] += _reassign(row, settings, now)
        _advance([row["id"] for row in rows], now)
    return done


def due(now: datetime, limit: int) -> list[dict]:
    """Pending handoffs whose next SLA action time has come: an index range scan."""
    query = (Handoff.select(Handoff.id, Handoff.lead, Handoff.rep, Handoff.promoted_by,
                            *SCHEDULE, *STAMP.values(), Rep.email, Rep.name,
                            Rep.manager_email, Team.manager_email.alias("team_manager"))
             .join(Rep).join(Team, JOIN.LEFT_OUTER)
             .where(Handoff.status == PENDING, Handoff.sla_next_at <= now)
             .order_by(Handoff.sla_next_at).limit(limit).dicts())
    return [_row(values) for values in query]


def _row(values: dict) -> dict:
    values["schedule"] = Schedule(values["due_at"], values["remind_due_at"],
                                  values["escalate_due_at"], values["reassign_due_at"])
    values["done"] = {action for action, field in STAMP.items() if values[field.name]}
    values["manager"] = values["manager_email"] or values["team_manager"] or ""
    return values


def _claim(action: str, ids: list[int], now: datetime) -> set[int]:
    """Stamp the action on those handoffs still pending and without it; return their ids."""
    if not ids:
        return set()
    stamp = STAMP[action]
    query = (Handoff.update({stamp: now})
             .where(Handoff.id.in_(ids), stamp.is_null(), Handoff.status == PENDING)
             .returning(Handoff.id, Handoff.promoted_day))
    claimed = list(query.execute())
    if action in ("lapse", "escalate"):  # breaches and escalations by rep
        mark_dirty(*{row.promoted_day for row in claimed})
    return {row.id for row in claimed}


def _remind_and_escalate(rows: list[dict], settings: Settings, now: datetime, done) -> None:
    """Claim each due action for its handoffs (one conditional update per action), then
    write every email of the chunk in one insert (outbox.queue_emails)."""
    wanted = {action: [r["id"] for r in rows if action in due_actions(r["schedule"], r["done"],
                                                                        now)]
              for action in ("remind", "lapse", "escalate")}
    claimed = {action: _claim(action, ids, now) for action, ids in wanted.items()}
    emails = []
    for row in rows:
        if row["id"] in claimed["remind"]:
            emails.append(outbox.Email("sla_reminder", row["email"], to_name=row["name"],
                                       lead_id=row["lead"], handoff_id=row["id"]))
        if row["id"] in claimed["escalate"]:
            events.emit("handoff.escalated", row["lead"], now=now, handoff_id=row["id"])
            emails += [outbox.Email("sla_escalation", address, lead_id=row["lead"],
                                    handoff_id=row["id"])
                       for address in {row["manager"], row["promoted_by"]} if "@" in address]
    outbox.queue_emails(emails, now=now)
    for action, ids in claimed.items():
        done[action] += len(ids)


def _reassign(row: dict, settings: Settings, now: datetime) -> int:
    """Hand the lead to the next eligible rep of the team; 1 if this call did it. After
    sla.max_reassignments, or with nobody left who has not let it lapse, the manager is
    told once that nobody has decided it."""
    handoff = Handoff.get_by_id(row["id"])
    try:
        with transaction():
            steps, rep_id = handoff.episode(), None
            if _passed_on(steps) < settings.sla.max_reassignments:
                rep_id = assignment.next_other_rep(handoff, settings, now.date())
            if rep_id is None:
                _give_up(row, steps, now)
                return 0
            handoffs.reassign(handoff.id, rep_id=rep_id, actor=SLA_ACTOR, settings=settings,
                              now=now)
    except DomainError as exc:  # decided or moved meanwhile: nothing to do
        log.info("handoff %s not reassigned: %s", handoff.id, exc.message)
        return 0
    return 1


def _passed_on(steps: list[Handoff]) -> int:
    """How many times the SLA has reassigned this MQL episode already."""
    return sum(step.reassigned_at is not None and step.decided_by == SLA_ACTOR
               for step in steps)


def _give_up(row: dict, steps: list[Handoff], now: datetime) -> None:
    """Stop reassigning this handoff (a conditional update, so once) and tell the manager,
    or the promoter when the rep has no manager: once an episode, even if a manager hands
    it on again by hand."""
    if not Handoff.update(reassign_due_at=None).where(
            Handoff.id == row["id"], Handoff.status == PENDING,
            Handoff.reassign_due_at.is_null(False)).execute():
        return
    told = AuditEvent.select().where(
        AuditEvent.action == "reassign_stopped",
        AuditEvent.subject.in_([f"handoff:{step.id}" for step in steps])).exists()
    audit(SLA_ACTOR, "reassign_stopped", f"handoff:{row['id']}",
          {"why": "nobody else can take it, or it was passed on enough"}, now)
    address = row["manager"] or row["promoted_by"]
    if "@" in address and not told:
        outbox.queue_email("mql_undecided", to_address=address, lead_id=row["lead"],
                           handoff_id=row["id"], now=now)


def _advance(ids: list[int], now: datetime) -> None:
    """Move each handoff's sla_next_at to its next action not yet done (or none): read in
    one query, written in one UPDATE … FROM (VALUES …)."""
    with transaction():
        rows = Handoff.select(Handoff.id, Handoff.status, *SCHEDULE, *STAMP.values()).where(
            Handoff.id.in_(ids)).dicts()
        update_from_values(Handoff, "sla_next_at", {
            values["id"]: _next_at(_row({**values, "manager_email": "", "team_manager": ""}),
                                   now)
            for values in rows if values["status"] == PENDING})


def _next_at(row: dict, now: datetime) -> datetime | None:
    next_at = row["schedule"].next_action_at(row["done"])
    if next_at is not None and next_at <= now:  # an action failed: retry next minute
        return now + RETRY
    return next_at
