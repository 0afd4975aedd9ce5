"""Who gets a handoff. Ordered territory rules on lead fields pick a team; weighted
round-robin picks among its reps who are active, not away and under capacity. The position
is kept in the database (AssignmentCursor), bumped inside the promotion's transaction, so
every process and restart shares it and a failed promotion gives the turn back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import peewee

from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.models import AssignmentCursor, Handoff, Lead, Rep, Team
from service.core.settings import Settings
from service.lifecycle import HandoffStatus

FIELDS = (*Lead.EDITABLE, "source")


class NoEligibleRep(InvalidInput):
    code = "no_eligible_rep"


class NoReps(NoEligibleRep):
    """Nobody to assign to at all: a fresh install, or a team nobody was added to yet."""
    code = "no_reps"


@dataclass(frozen=True)
class Rules:
    rules: list[dict]
    default_team: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(settings.assignment.rules, settings.assignment.default_team)

    def team_name(self, lead: Lead) -> str:
        """The first rule whose every condition matches the lead; else the default team."""
        for rule in self.rules:
            if all(_matches(getattr(lead, field, ""), wanted)
                   for field, wanted in rule.items() if field != "team"):
                return rule["team"]
        return self.default_team


def _matches(value: str, wanted) -> bool:
    options = wanted if isinstance(wanted, list) else [wanted]
    return (value or "").strip().lower() in {str(o).strip().lower() for o in options}


def weighted_ring(reps: list[Rep]) -> list[int]:
    """Rep ids spread by weight: weights 2 and 1 give [a, b, a], not [a, a, b]."""
    slots = [((i + 0.5) / rep.weight, rep.id, rep.id) for rep in reps
             for i in range(max(rep.weight, 0))]
    return [rep_id for _, _, rep_id in sorted(slots)]


def eligible(team: Team | None, today: date) -> list[Rep]:
    query = Rep.select().where(Rep.active == True)  # noqa: E712
    if team is not None:
        query = query.where(Rep.team == team.id)
    reps = [rep for rep in query.order_by(Rep.id) if not rep.is_away(today)]
    limited = [rep.id for rep in reps if rep.capacity > 0]
    if limited:
        open_counts = dict(Handoff.select(Handoff.rep, peewee.fn.COUNT(Handoff.id))
                           .where(Handoff.rep.in_(limited), Handoff.status == HandoffStatus.PENDING)
                           .group_by(Handoff.rep).tuples())
        reps = [rep for rep in reps
                if rep.capacity <= 0 or open_counts.get(rep.id, 0) < rep.capacity]
    return reps


def choose_rep(lead: Lead, rules: Rules, today: date) -> int:
    """Pick the rep for a lead; call inside the promotion's transaction."""
    name = rules.team_name(lead)
    team = Team.get_or_none(Team.name == name) if name else None
    if name and team is None:
        raise NoEligibleRep(f"assignment names team {name!r}, which does not exist")
    rep_id = _next(team, today)
    if rep_id is not None:
        return rep_id
    if not _has_reps(team):
        where = f" in team {team.name}" if team else ""
        raise NoReps(f"There are no reps{where} yet: add one under Sales → Reps "
                     "(/admin/rep/new/) or POST /api/v1/reps.")
    where = f"team {team.name}" if team else "any team"
    raise NoEligibleRep(f"no rep in {where} can take this lead: all are inactive, away or at "
                        "capacity. Choose a rep, or set the team's fallback owner.")


def next_other_rep(handoff: Handoff, settings: Settings, today: date) -> int | None:
    """The rep a handoff moves to when its holder does not answer: the next eligible rep of
    the holder's team (or of everyone), never the holder nor a rep who already let this MQL
    lapse; None when there is nobody."""
    team = handoff.rep.team if handoff.rep.team_id else None
    lapsed = {step.rep_id for step in handoff.episode() if step.lapsed_at is not None}
    return _next(team, today, skip={handoff.rep_id, *lapsed})


def _next(team: Team | None, today: date, skip: frozenset | set = frozenset()) -> int | None:
    """Advance the pool's cursor and return the rep at it, or the fallback owner."""
    pool = f"team:{team.id}" if team else "all"
    with transaction():
        AssignmentCursor.insert(pool=pool, position=0).on_conflict_ignore().execute()
        AssignmentCursor.update(position=AssignmentCursor.position + 1).where(
            AssignmentCursor.pool == pool).execute()
        position = AssignmentCursor.get(AssignmentCursor.pool == pool).position
        ring = weighted_ring([rep for rep in eligible(team, today) if rep.id not in skip])
    if ring:
        return ring[(position - 1) % len(ring)]
    fallback = _fallback(team)
    return fallback if fallback not in skip else None


def _has_reps(team: Team | None) -> bool:
    query = Rep.select() if team is None else Rep.select().where(Rep.team == team.id)
    return query.exists()


def _fallback(team: Team | None) -> int | None:
    if team is None or not team.fallback_email:
        return None
    rep = Rep.get_or_none(Rep.email == team.fallback_email, Rep.active == True)  # noqa: E712
    return rep.id if rep else None
