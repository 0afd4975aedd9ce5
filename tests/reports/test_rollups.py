"""Report rollups: day and month counts always agree with the base tables, whatever range
is asked for, and every change (decision, escalation, erasure) reaches them."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from service import lifecycle
from service.core.db import utcnow
from service.core.models import DirtyDay, Handoff
from service.leads.gdpr import erase_lead
from service.reports import figures as reports
from service.reports import rollups
from tests.factories import new_lead
from tests.reports.test_reports import World


@pytest.fixture
def world(app, rep):
    return World(app, rep)


def test_durations_keep_three_significant_figures():
    assert [rollups.significant(v) for v in (0, 999, 1004, 1005, 3000, 10080, 123456)] == [
        0, 999, 1000, 1010, 3000, 10100, 123000]


def test_ranges_split_into_whole_months_and_edge_days():
    split = rollups._split
    assert split(date(2026, 6, 15), date(2026, 9, 10), date(2026, 11, 23)) == (
        [date(2026, 7, 1), date(2026, 8, 1)],
        [(date(2026, 6, 15), date(2026, 6, 30)), (date(2026, 9, 1), date(2026, 9, 10))])
    # a month that has not ended is whole when the range runs to today
    assert split(date(2026, 10, 1), date(2026, 11, 23), date(2026, 11, 23)) == (
        [date(2026, 10, 1), date(2026, 11, 1)], [])
    assert split(date(2026, 9, 3), date(2026, 9, 20), date(2026, 11, 23)) == (
        [], [(date(2026, 9, 3), date(2026, 9, 20))])


def _direct(start: date, end: date) -> Counter:
    rows = (Handoff.select(Handoff.status).where(
        Handoff.promoted_day.between(start, end), Handoff.origin == "inbound",
        Handoff.replaces.is_null()).tuples())
    return Counter(status for (status,) in rows)


def test_totals_match_the_base_tables_for_any_range(world):
    rng = random.Random(3)
    for i in range(60):
        day = date(2026, 5, 1) + timedelta(days=rng.randrange(150))
        outcome = rng.choice([None, "accept", "not_a_fit"])
        world.mql(day.isoformat(), hours_to_decide=rng.choice([2, 30, 200]), outcome=outcome)
        if i % 7 == 0:
            reports._fresh()  # counted a bit at a time: the differences must add up
    today = utcnow().date()
    reports._fresh()
    for _ in range(25):
        start = date(2026, 4, 20) + timedelta(days=rng.randrange(160))
        end = start + timedelta(days=rng.randrange(120))
        assert +rollups.totals("cohort", start, end, today) == _direct(start, end), (start, end)


def test_a_late_decision_reaches_its_cohort_at_once(world):
    span = reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month")
    pending = world.mql("2026-09-10")
    assert reports.conversion(span, 0.2, 0.6)["rows"][0][1]["accepted"] == 0
    assert DirtyDay.select().count() == 0
    lifecycle.accept(pending.id, bant={"budget": "likely", "authority": "influencer",
                                       "need": "clear", "timeline": "lt_3m"},
                     notes="", actor="r", now=datetime(2026, 10, 20, tzinfo=UTC), requires=[])
    assert {row.day for row in DirtyDay.select()} == {date(2026, 9, 10), date(2026, 10, 20)}
    cohort = reports.conversion(span, 0.2, 0.6)["rows"][0][1]
    assert (cohort["promoted"], cohort["accepted"], cohort["pending"]) == (1, 1, 0)
    assert DirtyDay.select().count() == 0


def test_an_erased_lead_leaves_the_figures(world, tmp_path):
    span = reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month")
    kept = world.mql("2026-09-10", hours_to_decide=2, outcome="accept")
    gone = world.mql("2026-09-11", hours_to_decide=2, outcome="accept")
    assert reports.conversion(span, 0.2, 0.6)["rows"][0][1]["accepted"] == 2
    erase_lead(gone.lead_id, actor="dpo", data_dir=tmp_path, now=utcnow())
    assert reports.conversion(span, 0.2, 0.6)["rows"][0][1]["accepted"] == 1
    assert reports.inbound_outbound(span) == {"inbound": 1, "outbound": 0}
    assert kept.lead_id != gone.lead_id


def test_leads_per_stage_are_counted_again_a_minute_after_a_change(world):
    span = reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month")
    with time_machine.travel(datetime(2026, 11, 2, 9, 0, tzinfo=UTC), tick=False) as clock:
        world.mql("2026-09-10")
        assert reports.funnel(span)["stages"] == {"mql": 1}
        new_lead("new@example.com", at=utcnow(), source="form:contact", activity=None)
        assert reports.funnel(span)["stages"] == {"mql": 1}  # kept for a minute
        clock.shift(timedelta(seconds=61))
        assert reports.funnel(span)["stages"] == {"mql": 1, "lead": 1}
