"""The reports (SPEC §8). Every figure comes from a grouped SQL query on an indexed day
column (stage_change.day, handoff.promoted_day, handoff.decided_day), so the same SQL runs
on SQLite and PostgreSQL and never scans activity; days are then gathered into periods
here. Days are UTC days."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, timedelta

from peewee import Case, fn

from .models import Definition, Handoff, Lead, Rep, StageChange

PERIODS = ("day", "week", "month", "quarter", "year")
STAGES = ("lead", "mql", "sql", "nurture", "disqualified", "customer")
DECIDED = ("accepted", "rejected")


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
        key = period_start(_as_date(day), span.period)
        if key in counts:
            counts[key] += number
    return counts


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _mqls_by_day(start: date, end: date):
    return (StageChange.select(StageChange.day, fn.COUNT(StageChange.id))
            .where(StageChange.to_stage == "mql", StageChange.day.between(start, end))
            .group_by(StageChange.day).tuples())


def mql_volume(span: Range, benchmark_months: int) -> dict:
    """MQLs per period, and the benchmark: the average per period over the prior months."""
    counts = _bucket(_mqls_by_day(span.start, span.end), span)
    prior = Range(months_before(span.start, benchmark_months), span.start - timedelta(days=1),
                  span.period)
    prior_total = sum(n for _, n in _mqls_by_day(prior.start, prior.end))
    periods = len([k for k in prior.keys() if k >= prior.start]) or 1
    return {"rows": [(k, counts[k]) for k in span.keys()],
            "benchmark": prior_total / periods, "prior": (prior.start, prior.end)}


def _rate(accepted: int, promoted: int) -> float | None:
    return accepted / promoted if promoted else None


def conversion(span: Range, low: float, high: float) -> dict:
    """MQL→SQL by promotion cohort (inbound handoffs; reassignments count once)."""
    rows = (Handoff.select(Handoff.promoted_day, Handoff.status, fn.COUNT(Handoff.id))
            .where(Handoff.origin == "inbound", Handoff.replaces.is_null(),
                   Handoff.promoted_day.between(span.start, span.end))
            .group_by(Handoff.promoted_day, Handoff.status).tuples())
    cohorts = {k: {"promoted": 0, "accepted": 0, "rejected": 0, "pending": 0}
               for k in span.keys()}
    for day, status, number in rows:
        cohort = cohorts.get(period_start(_as_date(day), span.period))
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
    decided = Handoff.select().where(Handoff.status.in_(DECIDED), Handoff.origin == "inbound",
                                     Handoff.decided_day.between(span.start, span.end))
    counts = dict(decided.select(Handoff.sla_met, fn.COUNT(Handoff.id))
                  .group_by(Handoff.sla_met).tuples())
    minutes = sorted(m for (m,) in decided.select(Handoff.decision_minutes)
                     .where(Handoff.decision_minutes.is_null(False)).tuples())
    met, total = sum(n for key, n in counts.items() if key), sum(counts.values())
    per_rep = (Handoff.select(Handoff.rep, fn.COUNT(Handoff.id),
                              fn.SUM(Case(None, [(Handoff.sla_met == False, 1)], 0)),  # noqa: E712
                              fn.SUM(Case(None, [(Handoff.escalated_at.is_null(False), 1)], 0)))
               .where(Handoff.promoted_day.between(span.start, span.end),
                      Handoff.origin == "inbound")
               .group_by(Handoff.rep).tuples())
    per_rep = list(per_rep)
    emails = dict(Rep.select(Rep.id, Rep.email).where(
        Rep.id.in_([row[0] for row in per_rep])).tuples())
    by_rep = sorted((emails.get(rep_id, "?"), handled, breaches, escalations)
                    for rep_id, handled, breaches, escalations in per_rep)
    return {"decided": total, "met": met, "share": met / total if total else None,
            "median_minutes": statistics.median(minutes) if minutes else None,
            "p90_minutes": _percentile(minutes, 0.9),
            "by_rep": [(email, handled, int(breaches or 0), int(escalations or 0))
                       for email, handled, breaches, escalations in by_rep]}


def _percentile(values: list, fraction: float):
    if not values:
        return None
    return values[min(len(values) - 1, int(round(fraction * (len(values) - 1))))]


def rejection_reasons(span: Range, reasons: dict) -> list[tuple[str, int]]:
    rows = (Handoff.select(Handoff.reason, fn.COUNT(Handoff.id))
            .where(Handoff.status == "rejected",
                   Handoff.decided_day.between(span.start, span.end))
            .group_by(Handoff.reason).order_by(fn.COUNT(Handoff.id).desc()).tuples())
    return [(reasons.get(code, {}).get("label", code), n) for code, n in rows]


def _by(column, span: Range) -> list[tuple[str, int, int, float | None]]:
    rows = (Handoff.select(column, Handoff.status, fn.COUNT(Handoff.id))
            .where(Handoff.promoted_day.between(span.start, span.end),
                   Handoff.origin == "inbound", Handoff.replaces.is_null())
            .group_by(column, Handoff.status).tuples())
    table: dict = {}
    for key, status, number in rows:
        entry = table.setdefault(key, [0, 0])
        entry[0] += number
        entry[1] += number if status == "accepted" else 0
    return sorted(((str(k) if k is not None else "—", m, s, _rate(s, m))
                   for k, (m, s) in table.items()), key=lambda row: -row[1])


def by_source(span: Range):
    return _by(Handoff.lead_source, span)


def by_definition(span: Range):
    versions = dict(Definition.select(Definition.id, Definition.version).tuples())
    return [(f"v{versions[int(k)]}" if k != "—" else "none", m, s, r)
            for k, m, s, r in _by(Handoff.definition, span)]


def inbound_outbound(span: Range) -> dict[str, int]:
    rows = (Handoff.select(Handoff.origin, fn.COUNT(Handoff.id))
            .where(Handoff.status == "accepted",
                   Handoff.decided_day.between(span.start, span.end))
            .group_by(Handoff.origin).tuples())
    return {"inbound": 0, "outbound": 0, **dict(rows)}


def funnel(span: Range) -> dict:
    now = dict(Lead.select(Lead.stage, fn.COUNT(Lead.id)).group_by(Lead.stage).tuples())
    flows = (StageChange.select(StageChange.from_stage, StageChange.to_stage,
                                fn.COUNT(StageChange.id))
             .where(StageChange.from_stage.in_(list(STAGES)),
                    StageChange.day.between(span.start, span.end))
             .group_by(StageChange.from_stage, StageChange.to_stage)
             .order_by(fn.COUNT(StageChange.id).desc()).tuples())
    ages = (Handoff.select(Handoff.lead_age_minutes)
            .where(Handoff.promoted_day.between(span.start, span.end),
                   Handoff.origin == "inbound", Handoff.replaces.is_null(),
                   Handoff.lead_age_minutes.is_null(False)).tuples())
    to_mql = [minutes / 1440 for (minutes,) in ages]
    to_sql = [m for (m,) in Handoff.select(Handoff.decision_minutes).where(
        Handoff.status == "accepted", Handoff.origin == "inbound",
        Handoff.decided_day.between(span.start, span.end)).tuples() if m is not None]
    return {"stages": now, "flows": list(flows),
            "lead_to_mql_days": statistics.median(to_mql) if to_mql else None,
            "mql_to_sql_hours": statistics.median(to_sql) / 60 if to_sql else None}


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


def dashboard(settings: dict, span: Range) -> dict:
    volume = mql_volume(span, settings["reports.benchmark_months"])
    conv = conversion(span, settings["reports.conversion_low"],
                      settings["reports.conversion_high"])
    return {"span": span, "volume": volume, "conversion": conv, "sla": sla(span),
            "reasons": rejection_reasons(span, settings["handoff.reject_reasons"]),
            "sources": by_source(span), "definitions": by_definition(span),
            "origins": inbound_outbound(span), "funnel": funnel(span),
            "warnings": warnings(volume, conv, settings["reports.volume_tolerance"],
                                 span.period)}


CHARTS = {
    "mqls": ("volume", lambda s, span: mql_volume(span, s["reports.benchmark_months"])),
    "conversion": ("conversion", lambda s, span: conversion(
        span, s["reports.conversion_low"], s["reports.conversion_high"])),
    "sla": ("sla", lambda s, span: sla(span)),
    "reasons": ("reasons", lambda s, span: rejection_reasons(span, s["handoff.reject_reasons"])),
    "sources": ("sources", lambda s, span: by_source(span)),
    "definitions": ("definitions", lambda s, span: by_definition(span)),
    "origins": ("origins", lambda s, span: inbound_outbound(span)),
    "funnel": ("funnel", lambda s, span: funnel(span)),
}


def chart_csv(settings: dict, span: Range, chart: str) -> list[list]:
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
        return [["rep", "handoffs", "breaches", "escalations"]] + [
            list(row) for row in data["sla"]["by_rep"]]
    if chart == "reasons":
        return [["reason", "rejections"]] + [list(row) for row in data["reasons"]]
    if chart in ("sources", "definitions"):
        return [[chart[:-1], "mqls", "sqls", "rate"]] + [
            [k, m, s, "" if r is None else round(r, 4)] for k, m, s, r in data[chart]]
    if chart == "origins":
        return [["origin", "sqls"]] + [[k, v] for k, v in data["origins"].items()]
    if chart == "funnel":
        return [["stage", "leads now"]] + [[k, v] for k, v in
                                           sorted(data["funnel"]["stages"].items())]
    raise KeyError(chart)
