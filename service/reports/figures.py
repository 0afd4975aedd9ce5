"""The reports (SPEC §8), read from the rollups (service/reports/rollups.py): counts per day for
the charts drawn per period, per month and edge days for range totals, and histograms for
medians and percentiles. Days are UTC days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from service.content.reasons import reason_labels
from service.core.db import utcnow
from service.core.models import Definition, Rep
from service.core.settings import Settings
from service.core.statuses import HandoffStatus
from service.reports import rollups

PERIODS = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True)
class Range:
    start: date
    end: date  # inclusive
    period: str = "month"

    def keys(self) -> list[date]:
        """The start of every period touching the range, in order."""
        keys, day = [], period_start(self.start, self.period)
        while day <= self.end:
            keys.append(day)
            day = next_period(day, self.period)
        return keys


def period_start(day: date, period: str) -> date:
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "quarter":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def next_period(start: date, period: str) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[period]
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def months_before(day: date, months: int) -> date:
    month = day.month - 1 - months
    return date(day.year + month // 12, month % 12 + 1, 1)


def label(key: date, period: str) -> str:
    if period == "month":
        return key.strftime("%b %Y")
    if period == "quarter":
        return f"Q{(key.month - 1) // 3 + 1} {key.year}"
    if period == "year":
        return str(key.year)
    return key.isoformat()


def _bucket(rows, span: Range) -> dict[date, int]:
    counts = dict.fromkeys(span.keys(), 0)
    for day, number in rows:
        key = period_start(day, span.period)
        if key in counts:
            counts[key] += number
    return counts


def _fresh() -> date:
    """Recount what changed since the last read; return today (UTC)."""
    now = utcnow()
    rollups.refresh(now)
    return now.date()


def mql_volume(span: Range, benchmark_months: int) -> dict:
    """MQLs per period, and the benchmark: the average per period over the prior months."""
    today = _fresh()
    counts = _bucket([(day, n) for day, _, n in rollups.per_day("mql", span.start, span.end)],
                     span)
    prior = Range(months_before(span.start, benchmark_months), span.start - timedelta(days=1),
                  span.period)
    prior_total = sum(rollups.totals("mql", prior.start, prior.end, today).values())
    periods = len([k for k in prior.keys() if k >= prior.start]) or 1
    return {"rows": [(k, counts[k]) for k in span.keys()],
            "benchmark": prior_total / periods, "prior": (prior.start, prior.end)}


def _rate(accepted: int, promoted: int) -> float | None:
    return accepted / promoted if promoted else None


def conversion(span: Range, low: float, high: float) -> dict:
    """MQL→SQL by promotion cohort (inbound handoffs; reassignments count once)."""
    _fresh()
    cohorts = {k: {"promoted": 0, "accepted": 0, "rejected": 0, "pending": 0}
               for k in span.keys()}
    for day, status, number in rollups.per_day("cohort", span.start, span.end):
        cohort = cohorts.get(period_start(day, span.period))
        if cohort is not None:
            cohort["promoted"] += number
            if status in cohort:
                cohort[status] += number
    total = {k: sum(c[k] for c in cohorts.values()) for k in ("promoted", "accepted")}
    rate = _rate(total["accepted"], total["promoted"])
    return {"rows": [(k, c, _rate(c["accepted"], c["promoted"])) for k, c in cohorts.items()],
            "rate": rate, "band": band(rate, low, high), "low": low, "high": high}


def band(rate: float | None, low: float, high: float) -> tuple[str, str]:
    if rate is None:
        return "none", "No decided MQLs in this range yet."
    if rate < low:
        return "low", ("Too low: sales turns down most MQLs. Marketing may be sending leads "
                       "that are not ready; review the MQL definition together.")
    if rate > high:
        return "high", ("Unusually high: marketing may be holding leads back too long and "
                        "losing some. Consider promoting earlier.")
    return "healthy", "Healthy: marketing and sales agree on what a qualified lead is."


def sla(span: Range) -> dict:
    today = _fresh()

    def totals(figure):
        return rollups.totals(figure, span.start, span.end, today)

    met_counts, minutes = totals("sla"), _histogram(totals("decision"))
    met, total = met_counts["1"], sum(met_counts.values())
    handled, breaches, escalations = totals("rep"), totals("rep_breach"), totals("rep_escalated")
    emails = dict(Rep.select(Rep.id, Rep.email).where(
        Rep.id.in_([int(rep_id) for rep_id in handled])).tuples())
    by_rep = sorted((emails.get(int(rep_id), "?"), n, breaches[rep_id], escalations[rep_id])
                    for rep_id, n in handled.items())
    still_open = totals("rep_open")
    rates = sorted(rep_rate(emails.get(int(rep_id), "?"), n, breaches[rep_id],
                            still_open[rep_id]) for rep_id, n in handled.items())
    return {"decided": total, "met": met, "share": met / total if total else None,
            "median_minutes": _median(minutes), "p90_minutes": _percentile(minutes, 0.9),
            "by_rep": by_rep, "rates": rates}


def rep_rate(email: str, handled: int, breaches: int, still_open: int) -> tuple:
    """A rep's SLA rate: (email, steps within SLA, steps settled, rate). Settled steps are
    those met or missed; steps still open within their deadline are neither yet."""
    settled = handled - still_open
    within = settled - breaches
    return (email, within, settled, within / settled if settled else None)


def _histogram(counts) -> list[tuple[int, int]]:
    """(value, how many) in value order, from a duration figure's counts."""
    return sorted((int(value), n) for value, n in counts.items() if n)


def _nth(histogram: list[tuple[int, int]], index: int) -> int:
    for value, n in histogram:
        if index < n:
            return value
        index -= n
    raise IndexError(index)


def _median(histogram) -> float | None:
    size = sum(n for _, n in histogram)
    if not size:
        return None
    middle = (size - 1) // 2
    return (_nth(histogram, middle) + _nth(histogram, size // 2)) / 2


def _percentile(histogram, fraction: float):
    size = sum(n for _, n in histogram)
    if not size:
        return None
    return _nth(histogram, min(size - 1, int(round(fraction * (size - 1)))))


def _reasons() -> dict:
    """Every reason ever offered with its latest label (the reasons are content)."""
    return {code: {"label": label} for code, label in reason_labels().items()}


def rejection_reasons(span: Range, reasons: dict) -> list[tuple[str, int]]:
    counts = rollups.totals("reason", span.start, span.end, _fresh())
    return sorted(((reasons.get(code, {}).get("label", code), n) for code, n in counts.items()),
                  key=lambda row: (-row[1], row[0]))


def _by(figure: str, span: Range) -> list[tuple[str, int, int, float | None]]:
    table: dict = {}
    for key, number in rollups.totals(figure, span.start, span.end, _fresh()).items():
        value, status = key.rsplit("|", 1)
        entry = table.setdefault(value or "—", [0, 0])
        entry[0] += number
        entry[1] += number if status == HandoffStatus.ACCEPTED else 0
    return sorted(((k, m, s, _rate(s, m)) for k, (m, s) in table.items()),
                  key=lambda row: -row[1])


def by_source(span: Range):
    return _by("source", span)


def by_campaign(span: Range) -> list[tuple[str, str, int, int, float | None]]:
    """MQLs and SQLs per first-touch UTM source and campaign ("—" where a lead had none)."""
    table: dict = {}
    for key, number in rollups.totals("campaign", span.start, span.end, _fresh()).items():
        source, campaign, status = key.split("|")
        entry = table.setdefault((source or "—", campaign or "—"), [0, 0])
        entry[0] += number
        entry[1] += number if status == HandoffStatus.ACCEPTED else 0
    return sorted(((s, c, m, q, _rate(q, m)) for (s, c), (m, q) in table.items()),
                  key=lambda row: (-row[2], row[0], row[1]))


def by_definition(span: Range):
    versions = dict(Definition.select(Definition.id, Definition.version).tuples())
    return [(f"v{versions[int(k)]}" if k != "—" else "none", m, s, r)
            for k, m, s, r in _by("definition", span)]


def inbound_outbound(span: Range) -> dict[str, int]:
    counts = rollups.totals("sql_origin", span.start, span.end, _fresh())
    return {"inbound": 0, "outbound": 0, **counts}


def funnel(span: Range) -> dict:
    today = _fresh()
    flows = rollups.totals("flow", span.start, span.end, today)
    to_mql = _histogram(rollups.totals("lead_age", span.start, span.end, today))
    to_sql = _histogram(rollups.totals("sql_decision", span.start, span.end, today))
    lead_to_mql, mql_to_sql = _median(to_mql), _median(to_sql)
    return {"stages": rollups.stages(utcnow()),
            "flows": sorted(((*key.split("|"), n) for key, n in flows.items() if n),
                            key=lambda row: -row[2]),
            "lead_to_mql_days": None if lead_to_mql is None else lead_to_mql / 1440,
            "mql_to_sql_hours": None if mql_to_sql is None else mql_to_sql / 60}


def warnings(volume: dict, conv: dict, tolerance: float, period: str) -> list[str]:
    """Early warnings: the latest period's MQLs far from the benchmark, conversion outside
    the band."""
    found = []
    if volume["rows"] and volume["benchmark"]:
        key, latest = volume["rows"][-1]
        change = latest / volume["benchmark"] - 1
        if abs(change) > tolerance:
            way = "above" if change > 0 else "below"
            found.append(f"MQLs in {label(key, period)}: {latest}, {abs(change):.0%} {way} "
                         f"the benchmark of {volume['benchmark']:.1f} per {period}.")
    kind, reading = conv["band"]
    if kind in ("low", "high"):
        found.append(f"MQL→SQL conversion {conv['rate']:.0%}. {reading}")
    return found


def dashboard(settings: Settings, span: Range) -> dict:
    volume = mql_volume(span, settings.reports.benchmark_months)
    conv = conversion(span, settings.reports.conversion_low,
                      settings.reports.conversion_high)
    return {"span": span, "volume": volume, "conversion": conv, "sla": sla(span),
            "reasons": rejection_reasons(span, _reasons()),
            "sources": by_source(span), "campaigns": by_campaign(span),
            "definitions": by_definition(span),
            "origins": inbound_outbound(span), "funnel": funnel(span),
            "warnings": warnings(volume, conv, settings.reports.volume_tolerance,
                                 span.period)}


CHARTS = {
    "mqls": ("volume", lambda s, span: mql_volume(span, s.reports.benchmark_months)),
    "conversion": ("conversion", lambda s, span: conversion(
        span, s.reports.conversion_low, s.reports.conversion_high)),
    "sla": ("sla", lambda s, span: sla(span)),
    "reasons": ("reasons", lambda s, span: rejection_reasons(span, _reasons())),
    "sources": ("sources", lambda s, span: by_source(span)),
    "campaigns": ("campaigns", lambda s, span: by_campaign(span)),
    "definitions": ("definitions", lambda s, span: by_definition(span)),
    "origins": ("origins", lambda s, span: inbound_outbound(span)),
    "funnel": ("funnel", lambda s, span: funnel(span)),
}


def chart_csv(settings: Settings, span: Range, chart: str) -> list[list]:
    """One chart's CSV, computing only that chart's figures."""
    key, compute = CHARTS[chart]
    return csv_rows({"span": span, key: compute(settings, span)}, chart)


def csv_rows(data: dict, chart: str) -> list[list]:
    """The rows behind each chart, with a header, for the CSV downloads."""
    period = data["span"].period
    if chart == "mqls":
        return [["period", "mqls", "benchmark"]] + [
            [label(k, period), n, round(data["volume"]["benchmark"], 2)]
            for k, n in data["volume"]["rows"]]
    if chart == "conversion":
        return [["cohort", "promoted", "accepted", "rejected", "pending", "rate"]] + [
            [label(k, period), c["promoted"], c["accepted"], c["rejected"], c["pending"],
             "" if r is None else round(r, 4)] for k, c, r in data["conversion"]["rows"]]
    if chart == "sla":
        return [["rep", "handoffs", "breaches", "escalations", "within_sla", "settled",
                 "rate"]] + [[*row, within, settled, "" if rate is None else round(rate, 4)]
                             for row, (_, within, settled, rate) in zip(
                                 data["sla"]["by_rep"], data["sla"]["rates"], strict=True)]
    if chart == "reasons":
        return [["reason", "rejections"]] + [list(row) for row in data["reasons"]]
    if chart in ("sources", "definitions"):
        return [[chart[:-1], "mqls", "sqls", "rate"]] + [
            [k, m, s, "" if r is None else round(r, 4)] for k, m, s, r in data[chart]]
    if chart == "campaigns":
        return [["utm_source", "utm_campaign", "mqls", "sqls", "rate"]] + [
            [s, c, m, q, "" if r is None else round(r, 4)] for s, c, m, q, r in data[chart]]
    if chart == "origins":
        return [["origin", "sqls"]] + [[k, v] for k, v in data["origins"].items()]
    if chart == "funnel":
        return [["stage", "leads now"]] + [[k, v] for k, v in
                                           sorted(data["funnel"]["stages"].items())]
    raise KeyError(chart)
