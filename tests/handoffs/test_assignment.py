"""Assignment: territory rules, weights, time away, capacity, fallback, and an exact
weighted split under concurrent promotions."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from service.core.models import Handoff, Lead, Rep, Team
from service.handoffs.assignment import NoEligibleRep, NoReps, Rules, choose_rep, weighted_ring
from tests.factories import at_once, new_lead, promoted, rep_in_team

RULES = Rules(rules=[
    {"team": "EMEA", "country": ["GB", "DE"]},
    {"team": "Enterprise", "company_size": "5000+"},
    {"team": "Fintech", "industry": ["Banking"], "country": "US"},
], default_team="Rest")


@pytest.mark.parametrize("fields, team", [
    ({"country": "gb"}, "EMEA"),
    ({"country": "DE", "company_size": "5000+"}, "EMEA"),
    ({"country": "US", "company_size": "5000+"}, "Enterprise"),
    ({"country": "US", "industry": "banking"}, "Fintech"),
    ({"country": "CA", "industry": "Banking"}, "Rest"),
    ({}, "Rest"),
])
def test_rules_pick_team(fields, team):
    assert RULES.team_name(Lead(**fields)) == team


@pytest.mark.parametrize("weights, ring", [
    ([1, 1], ["a", "b"]),
    ([2, 1], ["a", "b", "a"]),
    ([3, 1], ["a", "a", "b", "a"]),
    ([1, 0], ["a"]),
])
def test_weighted_ring(weights, ring):
    reps = [Rep(id=i + 1, weight=w) for i, w in enumerate(weights)]
    names = {1: "a", 2: "b"}
    assert [names[r] for r in weighted_ring(reps)] == ring


GB = {"fields": {"country": "GB"}, "activity": None}


def team_with(*reps):
    """Reps in team EMEA: (name, fields) each, at name@example.com."""
    return [rep_in_team(f"{n}@example.com", name=n, **fields) for n, fields in reps]


def picks(n, now, start=0):
    rules = Rules(rules=[{"team": "EMEA", "country": "GB"}], default_team="")
    return [Rep.get_by_id(choose_rep(new_lead(f"lead{i}@example.com", at=now, **GB), rules,
                                      now.date())).name
            for i in range(start, start + n)]


def test_round_robin_skips_away_inactive_and_full(app, now):
    today = now.date()
    team_with(("ann", {}), ("bob", {"out_of_office": True}), ("cat", {"active": False}),
              ("dan", {"away_from": today - timedelta(days=1), "away_until": today}),
              ("eve", {"away_from": today + timedelta(days=1)}),
              ("fay", {"capacity": 1}))
    assert picks(4, now) == ["ann", "eve", "fay", "ann"]
    Handoff.create(lead=new_lead("lead99@example.com", at=now, **GB),
                   rep=Rep.get(Rep.name == "fay"), promoted_by="m", promoted_at=now, due_at=now)
    assert picks(3, now, start=10) == ["ann", "eve", "ann"]


def test_no_eligible_rep_refused_or_fallback(app, now):
    team_with(("ann", {"out_of_office": True}))
    with pytest.raises(NoEligibleRep, match="no rep in team EMEA can take this lead"):
        picks(1, now)
    Rep.create(email="boss@example.com", name="boss")
    Team.update(fallback_email="boss@example.com").execute()
    assert picks(1, now, start=10) == ["boss"]


def test_a_team_without_reps_says_so(app, now):
    Team.create(name="EMEA")
    Rep.create(email="ann@example.com", name="ann")
    with pytest.raises(NoReps, match=r"^There are no reps in team EMEA yet: add one under "
                       r"Sales → Reps \(/admin/rep/new/\) or POST /api/v1/reps\.$"):
        picks(1, now)


def test_explicit_rep_wins_and_missing_team_is_clear(make_app, now):
    make_app(**{"assignment.rules": [{"team": "Nowhere", "country": "GB"}]})
    away = Rep.create(email="away@example.com", out_of_office=True)
    handoff = promoted(away, "lead1@example.com", at=now, actor="m", **GB)
    assert handoff.rep.id == away.id
    with pytest.raises(NoEligibleRep, match="team 'Nowhere', which does not exist"):
        promoted(None, "lead2@example.com", at=now, actor="m", **GB)
    assert Lead.get(Lead.email == "lead2@example.com").stage == "lead"


def test_two_hundred_concurrent_promotions_split_exactly(make_app, now):
    make_app(**{"assignment.rules": [{"team": "EMEA", "country": "GB"}]})
    reps = team_with(("ann", {"weight": 3}), ("bob", {"weight": 2}), ("cat", {"weight": 1}))
    leads = [new_lead(f"lead{i}@example.com", at=now, **GB) for i in range(200)]

    def promote(i):
        for lead in leads[i::4]:
            promoted(None, lead, at=now, actor="m")

    errors = [exc for exc in at_once(promote, 4, database=True) if exc is not None]
    assert errors == []
    ring = weighted_ring(reps)
    expected = Counter(ring * (200 // len(ring)) + ring[:200 % len(ring)])
    got = Counter(h.rep_id for h in Handoff.select())
    assert got == expected and sum(got.values()) == 200
    assert (got[reps[0].id], got[reps[1].id], got[reps[2].id]) == (100, 67, 33)
