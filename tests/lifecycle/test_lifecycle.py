"""Transitions: legal moves write history; illegal ones raise domain errors; of two
simultaneous decisions exactly one wins."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service import lifecycle
from service.core.errors import AlreadyDecided, IllegalTransition, InvalidInput, NotFound
from service.core.models import Handoff, Lead, OutboxEmail, StageChange
from service.handoffs.sla import Schedule
from tests.factories import at_once, new_lead, promoted

BARBARA = "barbara@liskov.example.com"
CAPTURED = {"fields": {"company": "Liskov"}, "activity": None}
DAY = timedelta(hours=24)


def test_capture_is_unique_by_email(app, now):
    lead = new_lead(BARBARA, at=now, **CAPTURED)
    assert lead.stage == "lead"
    again = lifecycle.capture_many([{"email": BARBARA}], source="test", actor="test",
                                   now=now + timedelta(seconds=1))
    assert again == {}
    assert Lead.select().count() == 1
    assert StageChange.select().count() == 1


def test_promote_writes_handoff_history_and_outbox(app, rep, now):
    lead = new_lead(BARBARA, at=now, **CAPTURED)
    handoff = promoted(rep, lead, at=now, window=DAY)
    assert (handoff.status, handoff.rep.id, handoff.due_at) == (
        "pending", rep.id, now + timedelta(hours=24))
    assert Lead.get_by_id(lead.id).stage == "mql"
    assert OutboxEmail.get(OutboxEmail.handoff == handoff.id).to_address == rep.email


def test_promote_twice_is_illegal_and_changes_nothing(app, rep, now):
    lead = new_lead(BARBARA, at=now, **CAPTURED)
    promoted(rep, lead, at=now, window=DAY)
    with pytest.raises(IllegalTransition, match="cannot promote a lead in stage mql"):
        promoted(rep, lead, at=now, window=DAY)
    assert Handoff.select().count() == 1
    assert OutboxEmail.select().count() == 1


def test_unknown_lead_and_inactive_rep(app, rep, now):
    with pytest.raises(NotFound):
        lifecycle.promote(999, rep_id=rep.id, actor="m", note="", now=now,
                          schedule=Schedule(now + DAY, None, None, None))
    rep.active = False
    rep.save()
    with pytest.raises(InvalidInput, match="not active"):
        promoted(rep, BARBARA, at=now, window=DAY, **CAPTURED)


def test_accept_requires_configured_bant(app, rep, now):
    handoff = promoted(rep, BARBARA, at=now, window=DAY, **CAPTURED)
    with pytest.raises(InvalidInput, match="need is required"):
        lifecycle.accept(handoff.id, bant={"budget": "likely"}, notes="", actor="r", now=now,
                         requires=["need"])
    with pytest.raises(InvalidInput, match="budget must be one of"):
        lifecycle.accept(handoff.id, bant={"budget": "lots"}, notes="", actor="r", now=now,
                         requires=[])
    assert Handoff.get_by_id(handoff.id).status == "pending"


def test_late_decision_misses_sla(app, rep, now):
    handoff = promoted(rep, BARBARA, at=now, window=DAY, **CAPTURED)
    decided = lifecycle.reject(handoff.id, reason="not_ready", outcome="nurture:default",
                               notes="", actor="r", now=now + timedelta(hours=25))
    assert decided.sla_met is False and decided.lead.stage == "nurture"


def test_nurtured_lead_can_be_promoted_again(app, rep, now):
    lead = new_lead(BARBARA, at=now, **CAPTURED)
    first = promoted(rep, lead, at=now, window=DAY)
    lifecycle.reject(first.id, reason="not_ready", outcome="nurture:default", notes="",
                     actor="r", now=now)
    second = promoted(rep, lead, at=now + timedelta(days=30), window=DAY)
    assert second.status == "pending" and Lead.get_by_id(lead.id).stage == "mql"


def test_take_over_moves_a_pending_handoff_to_a_duplicate(app, rep, now):
    handoff = promoted(rep, BARBARA, at=now, window=DAY, **CAPTURED)
    duplicate = new_lead("b.liskov@liskov.example.com", at=now, **CAPTURED)
    lifecycle.take_over(handoff.id, lead_id=duplicate.id, actor="mia@example.com", now=now)
    assert Lead.get_by_id(duplicate.id).stage == "mql"
    assert Handoff.get_by_id(handoff.id).lead_id == duplicate.id
    change = StageChange.select().order_by(StageChange.id.desc()).first()
    assert (change.lead_id, change.from_stage, change.to_stage, change.reason) == (
        duplicate.id, "lead", "mql",
        "merged: took over the handoff of barbara@liskov.example.com")


@pytest.mark.parametrize("taker", ["mql", "decided"])
def test_take_over_only_a_pending_handoff_by_a_lead_without_one(app, rep, now, taker):
    handoff = promoted(rep, BARBARA, at=now, window=DAY, **CAPTURED)
    duplicate = new_lead("b.liskov@liskov.example.com", at=now, **CAPTURED)
    if taker == "mql":
        promoted(rep, duplicate, at=now, window=DAY)
    else:
        lifecycle.accept(handoff.id, bant={}, notes="", actor="r", now=now, requires=[])
    changes = StageChange.select().count()
    error = IllegalTransition if taker == "mql" else AlreadyDecided
    with pytest.raises(error):
        lifecycle.take_over(handoff.id, lead_id=duplicate.id, actor="m", now=now)
    assert Handoff.get_by_id(handoff.id).lead_id != duplicate.id
    assert StageChange.select().count() == changes


def test_simultaneous_decisions_exactly_one_wins(app, rep, now):
    handoff = promoted(rep, BARBARA, at=now, window=DAY, **CAPTURED)
    actions = ("accept", "reject")

    def decide(i):
        if actions[i] == "accept":
            lifecycle.accept(handoff.id, bant={"need": "clear"}, notes="", actor="a",
                             now=now, requires=["need"])
        else:
            lifecycle.reject(handoff.id, reason="not_a_fit", outcome="disqualify",
                             notes="", actor="b", now=now)
        return actions[i]

    results = ["already decided" if isinstance(result, AlreadyDecided) else result
               for result in at_once(decide, 2, database=True)]
    assert len(results) == 2
    assert results.count("already decided") == 1
    final = Handoff.get_by_id(handoff.id)
    winner = "accepted" if "accept" in results else "rejected"
    assert final.status == winner
    assert Lead.get_by_id(final.lead_id).stage == ("sql" if winner == "accepted"
                                                   else "disqualified")
    assert StageChange.select().where(StageChange.from_stage == "mql").count() == 1
