"""The charts' layout (service/reports/charts.py): no two labels overlap at any period and range
the dashboard offers, the benchmark is labelled in the margin and never on a bar, the
conversion chart draws the healthy band, colours meet WCAG AA; and the figures behind the new
charts: SLA rate per rep from its counts, MQLs and SQLs by UTM source and campaign."""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta

import pytest

from service import lifecycle
from service.core.models import Rep
from service.reports import charts
from service.reports import figures as reports
from tests import factories
from tests.reports.test_reports import BANT, World, at

END = date(2026, 11, 23)
# every range length the dashboard accepts runs from one day to three years (report_range)
LENGTHS = (0, 6, 13, 30, 31, 89, 92, 180, 366, 400, 730, 3 * 366)


def spans():
    for period, days in itertools.product(reports.PERIODS, LENGTHS):
        for end in (END, date(2026, 1, 1), date(2025, 12, 31)):
            yield reports.Range(end - timedelta(days=days), end, period)


def overlapping(labels: list[charts.Label]) -> list[tuple[str, str]]:
    return [(a.text, b.text) for a, b in itertools.combinations(labels, 2)
            if a.box.overlaps(b.box)]


def volume(span: reports.Range, rng: random.Random) -> dict:
    return {"rows": [(k, rng.choice([0, 7, 98765, 1234567])) for k in span.keys()],
            "benchmark": rng.choice([0.4, 35.5, 98765.4])}


def conversion(span: reports.Range, rng: random.Random) -> dict:
    return {"rows": [(k, {}, rng.choice([None, 0.0, 0.333, 1.0])) for k in span.keys()],
            "low": 0.2, "high": 0.45}


def inside(label: charts.Label, chart: charts.BarChart) -> bool:
    box = label.box
    return 0 <= box.x and box.x + box.w <= chart.width and 0 <= box.y \
        and box.y + box.h <= chart.height


@pytest.mark.parametrize("period", reports.PERIODS)
def test_no_two_labels_overlap_at_any_period_and_range(period):
    rng = random.Random(period)
    checked = 0
    for span in (s for s in spans() if s.period == period):
        for chart in (charts.volume_chart(volume(span, rng), period, str),
                      charts.conversion_chart(conversion(span, rng), period, str)):
            assert chart.axis, span  # the period is always named somewhere
            assert not overlapping(chart.labels()), span
            assert all(inside(label, chart) for label in chart.labels()), span
            checked += 1
    assert checked == 2 * len(LENGTHS) * 3


def test_a_day_by_day_three_years_keeps_some_labels_and_thins_the_rest():
    span = reports.Range(END - timedelta(days=3 * 366), END, "day")
    chart = charts.volume_chart(volume(span, random.Random(1)), "day", str)
    assert len(chart.bars) == 3 * 366 + 1
    assert 5 <= len(chart.axis) < 20
    assert chart.values == []  # no room above 1,099 bars: the table has the numbers
    few = charts.volume_chart({"rows": [(END, 3)], "benchmark": 1.0}, "day", str)
    assert [v.text for v in few.values] == ["3"]


@pytest.mark.parametrize("benchmark", [0.01, 3.0, 7.0, 50.0])
def test_the_benchmark_is_labelled_in_the_margin_never_on_a_bar(benchmark):
    rows = [(date(2026, m, 1), n) for m, n in zip(range(1, 13), [0, 7, 3, 7, 7, 1, 7, 2, 7, 0,
                                                                   7, 7], strict=True)]
    chart = charts.volume_chart({"rows": rows, "benchmark": benchmark}, "month", str)
    plot_right = chart.plot.x + chart.plot.w
    assert [label.text for label in chart.side] == ["benchmark", f"{benchmark:.1f}"]
    assert chart.plot.y <= chart.reference_y <= chart.plot.y + chart.plot.h
    for label in chart.side:
        assert label.box.x >= plot_right
        assert not any(label.box.overlaps(bar.box) for bar in chart.bars)
    assert not overlapping(chart.labels())


def test_the_conversion_chart_draws_the_healthy_band():
    rows = [(date(2026, m, 1), {}, r) for m, r in ((9, 0.1), (10, 0.3), (11, None))]
    chart = charts.conversion_chart({"rows": rows, "low": 0.2, "high": 0.45}, "month", str)
    bottom, per_unit = chart.plot.y + chart.plot.h, chart.plot.h / 0.45
    assert chart.band.y == pytest.approx(bottom - 0.45 * per_unit)
    assert chart.band.y + chart.band.h == pytest.approx(bottom - 0.2 * per_unit)
    assert [label.text for label in chart.side] == ["healthy", "20%–45%"]
    assert all(label.box.x >= chart.plot.x + chart.plot.w for label in chart.side)
    assert [bar.value for bar in chart.bars] == ["10%", "30%", "—"]


def test_text_and_bars_meet_wcag_aa_contrast():
    for ink in (charts.INK, charts.MUTED, charts.REFERENCE, charts.BAND_INK):
        assert charts.contrast(ink, "#ffffff") >= 4.5, ink
    assert charts.contrast(charts.BAND_INK, charts.BAND_FILL) >= 4.5
    assert charts.contrast(charts.INK, charts.BAND_FILL) >= 4.5  # value labels over the band
    assert charts.contrast(charts.BAR, "#ffffff") >= 3  # graphics: WCAG 1.4.11
    assert charts.contrast("#777777", "#ffffff") < 4.5  # the check can fail


def test_row_labels_fit_their_column_and_never_overlap():
    rows = [("x" * 80, 5.0, "5"), ("short", 120.0, "120"), ("", 0.0, "0")]
    chart = charts.hbars(rows)
    names = [name for name, _, _, _ in chart.rows]
    assert names[0].text.endswith("…") and names[0].box.w <= charts.NAME_WIDTH
    for name, bar, value, _ in chart.rows:
        assert not name.box.overlaps(bar) and not value.box.overlaps(bar)
        assert value.box.x + value.box.w <= chart.width
    assert not overlapping([label for name, _, value, _ in chart.rows
                            for label in (name, value)])


def test_sla_rate_per_rep_matches_its_counts(app, rep):
    world, jordan = World(app, rep), Rep.create(email="jordan@example.com")
    for hours in (1, 2, 30):
        world.mql("2026-09-10", hours_to_decide=hours, outcome="accept")
    world.mql("2026-09-11", hours_to_decide=50, outcome="not_a_fit", rep=jordan)
    world.mql("2026-09-12", rep=jordan)  # pending within its deadline: not settled yet
    with_time = reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month")
    figures = reports.sla(with_time)
    assert figures["by_rep"] == [("jordan@example.com", 2, 1, 0),
                                 ("riley.rep@example.com", 3, 1, 0)]
    assert figures["rates"] == [("jordan@example.com", 0, 1, 0.0),
                                ("riley.rep@example.com", 2, 3, pytest.approx(2 / 3))]
    drawn = charts.sla_chart(figures["rates"])
    assert [value.text for _, _, value, _ in drawn.rows] == ["0% (0 of 1)", "67% (2 of 3)"]
    rows = reports.csv_rows({"span": with_time, "sla": figures}, "sla")
    assert rows[0] == ["rep", "handoffs", "breaches", "escalations", "within_sla", "settled",
                       "rate"]
    assert rows[2] == ["riley.rep@example.com", 3, 1, 0, 2, 3, 0.6667]


def test_mqls_and_sqls_by_utm_source_and_campaign(app, rep):
    def mql(n, fields, accept):
        lead = factories.new_lead(f"utm{n}@example.com", at=at("2026-09-01"), fields=fields)
        handoff = factories.promoted(rep, lead, at=at("2026-09-10"),
                                     window=timedelta(hours=24))
        if accept:
            lifecycle.accept(handoff.id, bant=BANT, notes="", actor="r",
                             now=at("2026-09-10", 12), requires=[])

    spring = {"utm_source": "newsletter", "utm_campaign": "spring|launch"}
    mql(1, spring, True)
    mql(2, spring, False)
    mql(3, {"utm_source": "newsletter", "utm_campaign": "autumn"}, True)
    mql(4, {"utm_source": "ads"}, False)
    mql(5, {}, False)
    span = reports.Range(date(2026, 9, 1), date(2026, 9, 30), "month")
    assert reports.by_campaign(span) == [
        ("newsletter", "spring/launch", 2, 1, 0.5), ("ads", "—", 1, 0, 0.0),
        ("newsletter", "autumn", 1, 1, 1.0), ("—", "—", 1, 0, 0.0)]
    csv = reports.csv_rows({"span": span, "campaigns": reports.by_campaign(span)}, "campaigns")
    assert csv[:2] == [["utm_source", "utm_campaign", "mqls", "sqls", "rate"],
                       ["newsletter", "spring/launch", 2, 1, 0.5]]
    assert reports.by_campaign(reports.Range(date(2026, 10, 1), date(2026, 10, 31))) == []
