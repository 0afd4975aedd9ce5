"""Reports against hand-computed fixtures: counts and rates per period, the benchmark,
the health band and its reading, SLA figures, breakdowns, funnel."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from service import lifecycle
from service.core.config import load
from service.core.models import Rep
from service.handoffs.sla import Schedule
from service.leads.definitions import add_definition
from service.reports import figures as reports
from tests import factories
from tests.conftest import ROOT

BANT = {"budget": "likely", "authority": "influencer", "need": "clear", "timeline": "lt_3m"}


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


class World:
    def __init__(self, app, rep):
        self.app, self.rep, self.n = app, rep, 0

    def mql(self, day: str, source="form:contact", hours_to_decide=None, outcome=None,
            rep=None):
        """A lead captured a week earlier, promoted on `day`, maybe decided later."""
        self.n += 1
        promoted = at(day)
        lead = factories.new_lead(f"lead{self.n}@example.com", at=promoted - timedelta(days=7),
                                  source=source, activity=None)
        handoff = factories.promoted(rep or self.rep, lead, at=promoted,
                                     window=timedelta(hours=24))
        if outcome:
            decided = promoted + timedelta(hours=hours_to_decide)
            if outcome == "accept":
                lifecycle.accept(handoff.id, bant=BANT, notes="", actor="r", now=decided,
                                 requires=[])
            else:
                lifecycle.reject(handoff.id, reason=outcome, outcome="disqualify", notes="",
                                 actor="r", now=decided)
        return handoff


@pytest.fixture
def world(app, rep):
    return World(app, rep)


def test_mql_volume_and_benchmark(world):
    for month, count in (("2026-03", 2), ("2026-04", 4), ("2026-05", 6), ("2026-06", 0),
                         ("2026-07", 3), ("2026-08", 3), ("2026-09", 5), ("2026-10", 1)):
        for i in range(count):
            world.mql(f"{month}-{10 + i:02d}")
    span = reports.Range(date(2026, 9, 1), date(2026, 10, 31), "month")
    volume = reports.mql_volume(span, benchmark_months=6)
    assert volume["rows"] == [(date(2026, 9, 1), 5), (date(2026, 10, 1), 1)]
    assert volume["benchmark"] == pytest.approx((2 + 4 + 6 + 0 + 3 + 3) / 6)
    assert volume["prior"] == (date(2026, 3, 1), date(2026, 8, 31))
    weekly = reports.mql_volume(reports.Range(date(2026, 9, 7), date(2026, 9, 20), "week"), 6)
    assert weekly["rows"] == [(date(2026, 9, 7), 4), (date(2026, 9, 14), 1)]
    quarter = reports.mql_volume(reports.Range(date(2026, 7, 1), date(2026, 9, 30),
                                               "quarter"), 6)
    assert quarter["rows"] == [(date(2026, 7, 1), 11)]


def test_conversion_cohorts_and_band(world):
    for outcome in ("accept", "accept", "accept", "not_a_fit"):
        world.mql("2026-09-10", hours_to_decide=5, outcome=outcome)
    world.mql("2026-10-02", hours_to_decide=30, outcome="not_a_fit")
    world.mql("2026-10-03")
    span = reports.Range(date(2026, 9, 1), date(2026, 10, 31), "month")
    result = reports.conversion(span, low=0.2, high=0.6)
    september, october = result["rows"]
    assert september[1] == {"promoted": 4, "accepted": 3, "rejected": 1, "pending": 0}
    assert september[2] == pytest.approx(0.75)
    assert october[1] == {"promoted": 2, "accepted": 0, "rejected": 1, "pending": 1}
    assert october[2] == 0
    assert result["rate"] == pytest.approx(3 / 6)
    assert result["band"][0] == "healthy"
    assert reports.band(0.1, 0.2, 0.6)[0] == "low" and "definition" in reports.band(
        0.1, 0.2, 0.6)[1]
    assert reports.band(0.7, 0.2, 0.6)[0] == "high"
    assert reports.band(None, 0.2, 0.6)[0] == "none"


def test_sla_figures_and_breaches_by_rep(world, rep):
    jordan = Rep.create(email="jordan@example.com")
    for hours in (1, 2, 3):
        world.mql("2026-09-10", hours_to_decide=hours, outcome="accept")
    world.mql("2026-09-11", hours_to_decide=30, outcome="not_a_fit", rep=jordan)
    world.mql("2026-09-12", hours_to_decide=50, outcome="accept", rep=jordan)
    figures = reports.sla(reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month"))
    assert (figures["decided"], figures["met"]) == (5, 3)
    assert figures["share"] == pytest.approx(0.6)
    assert figures["median_minutes"] == 180
    assert figures["p90_minutes"] == 3000
    assert figures["by_rep"] == [("jordan@example.com", 2, 2, 0),
                                 ("riley.rep@example.com", 3, 0, 0)]


def test_breakdowns_and_funnel(world, rep, now):
    add_definition("mql", text="v1", agreed_by_marketing="m", agreed_by_sales="s",
                   agreed_at=at("2026-01-01"))
    world.mql("2026-09-10", source="form:contact", hours_to_decide=2, outcome="accept")
    world.mql("2026-09-11", source="form:contact", hours_to_decide=2, outcome="not_a_fit")
    world.mql("2026-09-12", source="webhook:website", hours_to_decide=2, outcome="competitor")
    lifecycle.register_outbound("cold@example.com", fields={}, rep_id=rep.id, bant=BANT,
                                notes="", actor="sam", now=at("2026-09-20"))
    span = reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month")
    reasons = {"not_a_fit": {"label": "Not a fit"}, "competitor": {"label": "Competitor"}}
    assert sorted(reports.rejection_reasons(span, reasons)) == [("Competitor", 1),
                                                               ("Not a fit", 1)]
    assert reports.by_source(span) == [("form:contact", 2, 1, 0.5),
                                       ("webhook:website", 1, 0, 0.0)]
    assert reports.by_definition(span) == [("v1", 3, 1, pytest.approx(1 / 3))]
    assert reports.inbound_outbound(span) == {"inbound": 1, "outbound": 1}
    funnel = reports.funnel(span)
    assert funnel["stages"] == {"sql": 2, "disqualified": 2}
    assert sorted(funnel["flows"]) == [("lead", "mql", 3), ("mql", "disqualified", 2),
                                       ("mql", "sql", 1)]
    # durations are counted to three significant figures: 10,080 minutes as 10,100
    assert funnel["lead_to_mql_days"] == pytest.approx(7.0, rel=0.005)
    assert funnel["mql_to_sql_hours"] == pytest.approx(2.0)


def test_early_warnings(world):
    for i in range(6):
        world.mql(f"2026-0{3 + i}-10")
    for i in range(4):
        world.mql(f"2026-09-{10 + i}", hours_to_decide=1, outcome="not_a_fit")
    span = reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month")
    data = reports.dashboard(load(ROOT / "config.toml", {
        "reports.benchmark_months": 6, "reports.conversion_low": 0.2,
        "reports.conversion_high": 0.6, "reports.volume_tolerance": 0.3,
        "handoff.reject_reasons": {}}, environ={}), span)
    assert data["warnings"] == [
        "MQLs in Sep 2026: 4, 300% above the benchmark of 1.0 per month.",
        "MQL→SQL conversion 0%. " + reports.band(0.0, 0.2, 0.6)[1]]
    csv = reports.csv_rows(data, "conversion")
    assert csv[0] == ["cohort", "promoted", "accepted", "rejected", "pending", "rate"]
    assert csv[1] == ["Sep 2026", 4, 0, 4, 0, 0.0]
    settings = load(ROOT / "config.toml", {"reports.conversion_low": 0.2,
                                           "reports.conversion_high": 0.6}, environ={})
    assert reports.chart_csv(settings, span, "conversion") == csv


def test_weekly_digest_once_on_its_day(make_app, rep, smtp):
    import time_machine

    from service.core.db import utcnow
    from service.core.runtime import runtime
    from tests.conftest import run_worker

    world = World(make_app(**{
        "reports.time_zone": "Europe/Berlin", "reports.digest_day": "mon",
        "reports.digest_time": "08:00",
        "reports.digest_recipients": ["ceo@example.com", "mia@example.com"]}), rep)
    with time_machine.travel(at("2026-11-18", 9), tick=False) as clock:
        world.mql("2026-11-17", hours_to_decide=2, outcome="accept")
        world.mql("2026-11-18", hours_to_decide=3, outcome="not_a_fit")
        for moment in ("2026-11-22 23:00", "2026-11-23 06:59"):  # Sunday; Monday 07:59 Berlin
            clock.move_to(datetime.fromisoformat(moment).replace(tzinfo=UTC))
            runtime.queue.enqueue("workers.jobs.send_digest")
            run_worker()
        assert digests(smtp) == []
        for moment in ("2026-11-23 07:01", "2026-11-23 09:00", "2026-11-25 12:00"):
            clock.move_to(datetime.fromisoformat(moment).replace(tzinfo=UTC))
            runtime.queue.enqueue("workers.jobs.send_digest")
            run_worker()
        assert utcnow().date() == date(2026, 11, 25)
    sent = digests(smtp)
    assert sorted(m["To"] for m in sent) == ["ceo@example.com", "mia@example.com"]
    assert sent[0]["Subject"].startswith("Leadbridge weekly: 2 MQLs")
    text = sent[0].get_body(("plain",)).get_content()
    assert "2026-11-16 to 2026-11-22" in text and "1 inbound" in text
    assert "MQL→SQL conversion:  50%" in text


def digests(smtp):
    return [m for m in smtp.messages if m["Subject"].startswith("Leadbridge weekly")]


def test_reassigned_mqls_count_once_by_episode(world, rep):
    """Hand-computed: four MQLs promoted on 10 Sep with a 24 h window each.
    A: Riley lets it lapse, the SLA hands it to Sasha at 22:00 on the 11th, Sasha accepts on
       the 12th at 12:00 (50 h): converted, SLA missed, a breach for Riley.
    B: a manager moves it to Sasha after 2 h, Sasha accepts 2 h later (4 h): converted, met.
    C: Riley lapses, Sasha lapses, Jordan rejects on the 13th at 11:00 (73 h): rejected,
       missed, a breach each for Riley and Sasha.
    D: Riley accepts after 2 h: converted, met."""
    sasha, jordan = (Rep.create(email=f"{n}@example.com") for n in ("sasha", "jordan"))
    window = timedelta(hours=24)

    def hand(handoff, to, moment, actor="sla"):
        return lifecycle.reassign(handoff.id, rep_id=to.id, actor=actor, now=moment,
                                  schedule=Schedule(moment + window, None, None, None))

    a = world.mql("2026-09-10")
    a2 = hand(a, sasha, at("2026-09-11", 22))
    lifecycle.accept(a2.id, bant=BANT, notes="", actor="s", now=at("2026-09-12", 12),
                     requires=[])
    b = world.mql("2026-09-10")
    b2 = hand(b, sasha, at("2026-09-10", 12), actor="sam@example.com")
    lifecycle.accept(b2.id, bant=BANT, notes="", actor="s", now=at("2026-09-10", 14),
                     requires=[])
    c = world.mql("2026-09-10")
    c3 = hand(hand(c, sasha, at("2026-09-11", 22)), jordan, at("2026-09-13", 10))
    lifecycle.reject(c3.id, reason="not_a_fit", outcome="disqualify", notes="", actor="j",
                     now=at("2026-09-13", 11))
    world.mql("2026-09-10", hours_to_decide=2, outcome="accept")
    span = reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month")

    conversion = reports.conversion(span, low=0.2, high=0.6)
    assert conversion["rows"][0][1] == {"promoted": 4, "accepted": 3, "rejected": 1,
                                        "pending": 0}
    assert conversion["rate"] == pytest.approx(0.75)
    figures = reports.sla(span)
    assert (figures["decided"], figures["met"]) == (4, 2)
    assert figures["median_minutes"] == (240 + 3000) / 2
    assert figures["p90_minutes"] == 4380
    assert figures["by_rep"] == [("jordan@example.com", 1, 0, 0),
                                 ("riley.rep@example.com", 4, 2, 0),
                                 ("sasha@example.com", 3, 1, 0)]
    assert reports.funnel(span)["mql_to_sql_hours"] == 4, "median of 2, 4 and 50 hours"
    assert reports.by_source(span) == [("form:contact", 4, 3, 0.75)]
