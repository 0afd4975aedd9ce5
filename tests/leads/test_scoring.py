"""Scores decay with time, explain themselves, feed the suggested list, and promote only
when auto_promote is on."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from service.core.db import utcnow
from service.core.models import Activity, Handoff, Lead, StageChange
from service.core.runtime import runtime
from service.intake.activity import ingest, record_events
from service.intake.event import Event
from service.leads import scoring

POINTS = {"pricing_page_view": 10, "contact_sales": 40, "page_view": 1}


@pytest.fixture
def policy():
    return scoring.Policy(points=POINTS, half_life_days=30, threshold=45, auto_promote=False)


def score_of(email, policy, now):
    return policy.score(Lead.get(Lead.email == email).score_log, now)


def record(email, kind, at, policy, now):
    record_events([Event(type=kind, occurred_at=at, email=email)], source="t", now=now,
                  policy=policy)


def test_decay_and_breakdown(app, policy):
    with time_machine.travel("2026-06-01 12:00Z", tick=False) as traveller:
        now = utcnow()
        record("a@example.com", "pricing_page_view", now - timedelta(days=30), policy, now)
        record("a@example.com", "contact_sales", now, policy, now)
        record("a@example.com", "form_submit", now, policy, now)
        assert score_of("a@example.com", policy, now) == pytest.approx(45.0)
        lead = Lead.get(Lead.email == "a@example.com")
        rows = scoring.breakdown(lead.activities.order_by(Activity.occurred_at), policy, now)
        assert [(r["type"], r["points"], r["now"]) for r in rows] == [
            ("pricing_page_view", 10, 5.0), ("contact_sales", 40, 40.0), ("form_submit", 0, 0)]
        traveller.shift(timedelta(days=30))
        later = utcnow()
        assert score_of("a@example.com", policy, later) == pytest.approx(22.5)
        assert [r["now"] for r in scoring.breakdown(lead.activities.order_by(
            Activity.occurred_at), policy, later)] == [2.5, 20.0, 0]


def test_suggested_list_follows_the_clock(app, policy, now):
    record("hot@example.com", "contact_sales", now, policy, now)
    record("hot@example.com", "pricing_page_view", now, policy, now)
    record("warm@example.com", "pricing_page_view", now, policy, now)
    assert [lead.email for lead in scoring.suggested(policy, now)] == ["hot@example.com"]
    assert list(scoring.suggested(policy, now + timedelta(days=30))) == []


def test_score_order_is_stable_over_years(app, policy, now):
    far = now + timedelta(days=3650)
    record("old@example.com", "contact_sales", now, policy, now)
    record("new@example.com", "page_view", far, policy, far)
    assert score_of("new@example.com", policy, far) == pytest.approx(1.0)
    assert score_of("old@example.com", policy, far) < 1e-30


@pytest.mark.parametrize("auto, stage", [(False, "lead"), (True, "mql")])
def test_auto_promote(make_app, rep, auto, stage):
    make_app(**{"scoring.auto_promote": auto, "scoring.suggest_threshold": 45.0,
                "handoff.auto_promoter": "mia@example.com"})
    settings, now = runtime.settings, utcnow()
    ingest([Event(type="contact_sales", occurred_at=now, email="buyer@example.com")],
           source="t", settings=settings, now=now)
    assert Lead.get().stage == "lead"
    ingest([Event(type="pricing_page_view", occurred_at=now, email="buyer@example.com")],
           source="t", settings=settings, now=now)
    assert Lead.get().stage == stage
    if auto:
        handoff = Handoff.get()
        assert (handoff.rep.id, handoff.promoted_by) == (rep.id, "mia@example.com")
        promotion = StageChange.get(StageChange.to_stage == "mql")
        assert promotion.actor == "auto-promotion"
        ingest([Event(type="contact_sales", occurred_at=now, email="buyer@example.com")],
               source="t", settings=settings, now=now)
        assert Handoff.select().count() == 1


def test_rescore_after_points_change(app, policy, now):
    record("a@example.com", "contact_sales", now, policy, now)
    doubled = scoring.Policy(points={"contact_sales": 80}, half_life_days=30, threshold=45,
                             auto_promote=False)
    assert scoring.rescore_all(doubled, now=now) == 1
    assert score_of("a@example.com", doubled, now) == pytest.approx(80.0)
