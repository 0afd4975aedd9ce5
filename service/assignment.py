"""Who gets a handoff: weighted round-robin over the eligible reps, its position kept in the
database (AssignmentCursor) so every process and restart shares it."""

from __future__ import annotations

from .db import transaction
from .errors import InvalidInput
from .models import AssignmentCursor, Rep


class NoEligibleRep(InvalidInput):
    code = "no_eligible_rep"


def eligible_reps(team_id: int | None = None) -> list[Rep]:
    query = Rep.select().where(Rep.active == True, Rep.out_of_office == False)  # noqa: E712
    if team_id is not None:
        query = query.where(Rep.team == team_id)
    return list(query.order_by(Rep.id))


def weighted_ring(reps: list[Rep]) -> list[int]:
    """Rep ids spread by weight: weights 2 and 1 give [a, b, a], not [a, a, b]."""
    slots = []
    for rep in reps:
        weight = max(rep.weight, 0)
        slots += [((i + 0.5) / weight, rep.id) for i in range(weight)]
    return [rep_id for _, rep_id in sorted(slots)]


def next_rep(pool: str = "all", team_id: int | None = None) -> int:
    """Advance the pool's cursor and return the rep at it, in one transaction."""
    ring = weighted_ring(eligible_reps(team_id))
    if not ring:
        raise NoEligibleRep("no active rep is available to take this lead")
    with transaction():
        AssignmentCursor.insert(pool=pool, position=0).on_conflict_ignore().execute()
        AssignmentCursor.update(position=AssignmentCursor.position + 1).where(
            AssignmentCursor.pool == pool).execute()
        position = AssignmentCursor.get(AssignmentCursor.pool == pool).position
    return ring[(position - 1) % len(ring)]
