"""Report rollups: every report figure counted per day and per calendar month, so the
dashboard reads a few thousand rows however many leads there are.

Whatever changes a figure marks its days dirty in the same transaction (mark_dirty);
refresh() recounts dirty days from the base tables and re-sums their months. The reports
refresh before they read, so figures are exact and current. Durations (time to decide,
lead age) are counted per value, kept to three significant figures from 1,000 up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from peewee import SQL, Expression, Field, fn

from service.core.db import lock, transaction, write_last
from service.core.fastsql import insert_rows
from service.core.models import DirtyDay, Handoff, Lead, Rollup, StageChange
from service.core.statuses import HandoffStatus

ACCEPTED, REJECTED = HandoffStatus.ACCEPTED, HandoffStatus.REJECTED
DECIDED = (ACCEPTED, REJECTED)
LAST_CHANGE = "#last_change"
BATCH_DAYS = 31


@dataclass(frozen=True)
class Figure:
    day: Field
    where: Expression
    keys: tuple[Field, ...] = ()
    duration: bool = False


# Counted by MQL episode (promotion to final decision, across every handoff that replaced
# another): each step carries the episode's promoted_day, and the episode's outcome is its
# last step, the one not reassigned. The per-rep figures count steps: each lapsed step is a
# breach of the rep who let it lapse.
_INBOUND = Handoff.origin == "inbound"
_EPISODE = _INBOUND & Handoff.reassigned_at.is_null()
_DECIDED = _INBOUND & Handoff.status.in_(DECIDED)

FIGURES = {
    # MQLs are promotions: an episode counts once on its promotion day, however many
    # handoffs it takes and whichever lead it ends on after a merge
    "mql": Figure(Handoff.promoted_day, _EPISODE),
    "flow": Figure(StageChange.day, StageChange.from_stage.is_null(False),
                   (StageChange.from_stage, StageChange.to_stage)),
    "cohort": Figure(Handoff.promoted_day, _EPISODE, (Handoff.status,)),
    "source": Figure(Handoff.promoted_day, _EPISODE, (Handoff.lead_source, Handoff.status)),
    "definition": Figure(Handoff.promoted_day, _EPISODE, (Handoff.definition, Handoff.status)),
    "campaign": Figure(Handoff.promoted_day, _EPISODE, (Handoff.lead_utm_source,
                                                        Handoff.lead_utm_campaign, Handoff.status)),
    "lead_age": Figure(Handoff.promoted_day, _EPISODE & Handoff.lead_age_minutes.is_null(False),
                       (Handoff.lead_age_minutes,), duration=True),
    "rep": Figure(Handoff.promoted_day, _INBOUND, (Handoff.rep,)),
    "rep_breach": Figure(Handoff.promoted_day, _INBOUND & Handoff.lapsed_at.is_null(False),
                         (Handoff.rep,)),
    # steps still open within their deadline: neither met nor missed yet
    "rep_open": Figure(Handoff.promoted_day, _INBOUND & (Handoff.status == HandoffStatus.PENDING)
                       & Handoff.lapsed_at.is_null(), (Handoff.rep,)),
    "rep_escalated": Figure(Handoff.promoted_day, _INBOUND & Handoff.escalated_at.is_null(False),
                            (Handoff.rep,)),
    "sla": Figure(Handoff.decided_day, _DECIDED, (Handoff.sla_met,)),
    "decision": Figure(Handoff.decided_day, _DECIDED & Handoff.decision_minutes.is_null(False),
                       (Handoff.decision_minutes,), duration=True),
    "sql_decision": Figure(Handoff.decided_day, _INBOUND & (Handoff.status == ACCEPTED)
                           & Handoff.decision_minutes.is_null(False),
                           (Handoff.decision_minutes,), duration=True),
    "reason": Figure(Handoff.decided_day, Handoff.status == REJECTED, (Handoff.reason,)),
    "sql_origin": Figure(Handoff.decided_day, Handoff.status == ACCEPTED, (Handoff.origin,)),
}


def significant(value: int) -> int:
    """value kept to three significant figures (exact below 1,000)."""
    if value < 1000:
        return value
    step = 10 ** (len(str(value)) - 3)
    return (value + step // 2) // step * step


def _key(values, duration: bool) -> str:
    if duration:
        return str(significant(int(values[0])))
    return "|".join("" if v is None else str(int(v)) if isinstance(v, bool)
                    else str(v).replace("|", "/") for v in values)  # "|" parts the key


# Marking -------------------------------------------------------------------------------

def mark_dirty(*days) -> None:
    """These days' figures changed; call inside the transaction that changed them. Written
    at its end (db.write_last): every recorder and decision marks today."""
    days = {d for d in days if d is not None}
    if days:
        write_last("dirty-days", days, _write_dirty)


def _write_dirty(days: set) -> None:
    (DirtyDay.insert_many([{"day": d, "version": 1} for d in sorted(days)])
     .on_conflict(conflict_target=[DirtyDay.day],
                  update={DirtyDay.version: DirtyDay.version + 1}).execute())


def mark_handoffs_dirty(where: Expression) -> None:
    """The days of the handoffs matching `where`, before they change or go."""
    rows = Handoff.select(Handoff.promoted_day, Handoff.decided_day).where(where).tuples()
    mark_dirty(*{day for pair in rows for day in pair})


def mark_lead_dirty(lead_id: int) -> None:
    """Every day a lead counts in, before its history is deleted or moved."""
    changes = StageChange.select(StageChange.day).where(StageChange.lead == lead_id).tuples()
    mark_dirty(*{day for (day,) in changes})
    mark_handoffs_dirty(Handoff.lead == lead_id)


def mark_all_dirty() -> None:
    """After a bulk load or an upgrade: every day with data."""
    days = (StageChange.select(StageChange.day.alias("day"))
            | Handoff.select(Handoff.promoted_day)
            | Handoff.select(Handoff.decided_day).where(Handoff.decided_day.is_null(False)))
    mark_dirty(*{day for (day,) in days.tuples() if day is not None})


# Refreshing ----------------------------------------------------------------------------

def refresh(now: datetime) -> int:
    """Recount every dirty day and its month; return how many days were recounted."""
    dirty = list(DirtyDay.select(DirtyDay.day, DirtyDay.version).order_by(DirtyDay.day)
                 .tuples())
    for start in range(0, len(dirty), BATCH_DAYS):
        with transaction():
            lock("rollups")
            _recount(dirty[start:start + BATCH_DAYS], now)
    return len(dirty)


def _recount(batch: list[tuple[date, int]], now: datetime) -> None:
    """Count the batch's days again and write only what changed, to the day rows and by the
    same differences to their month rows."""
    days = [day for day, _ in batch]
    counted = {(day, name, key): n for name, figure in FIGURES.items()
               for (day, key), n in _count(figure, days).items()}
    stored = _stored(Rollup.day.in_(days), "day")
    changes = {k: counted.get(k, 0) - stored.get(k, (0, 0))[1]
               for k in counted.keys() | stored.keys()}
    changes = {k: d for k, d in changes.items() if d}
    _apply("day", changes, stored, now)
    by_month: Counter = Counter()
    for (day, name, key), difference in changes.items():
        by_month[(day.replace(day=1), name, key)] += difference
    months = sorted({month for month, _, _ in by_month})
    if months:
        _apply("month", {k: d for k, d in by_month.items() if d},
               _stored(Rollup.day.in_(months), "month"), now)
    for day, version in batch:
        DirtyDay.delete().where(DirtyDay.day == day, DirtyDay.version == version).execute()


def _stored(where: Expression, span: str) -> dict[tuple, tuple[int, int]]:
    rows = (Rollup.select(Rollup.id, Rollup.day, Rollup.figure, Rollup.key, Rollup.count)
            .where(Rollup.span == span, Rollup.figure.in_(list(FIGURES)), where).tuples())
    return {(_as_date(day), figure, key): (row_id, n) for row_id, day, figure, key, n in rows}


def _apply(span: str, changes: dict, stored: dict, now: datetime) -> None:
    """Add the differences to the stored counts: changed rows are replaced, zeros dropped."""
    replaced = [stored[k][0] for k in changes if k in stored]
    for start in range(0, len(replaced), 500):
        Rollup.delete().where(Rollup.id.in_(replaced[start:start + 500])).execute()
    insert_rows(Rollup, [
        {"span": span, "day": day, "figure": name, "key": key, "count": total,
         "refreshed_at": now}
        for (day, name, key), difference in changes.items()
        if (total := stored.get((day, name, key), (0, 0))[1] + difference)])


def _count(figure: Figure, days: list[date]) -> Counter:
    query = (figure.day.model
             .select(figure.day, *figure.keys, fn.COUNT(SQL("*")))
             .where(figure.day.in_(days), figure.where)
             .group_by(figure.day, *figure.keys).tuples())
    counts: Counter = Counter()
    for day, *values, number in query:
        counts[(_as_date(day), _key(values, figure.duration))] += number
    return counts


def stages(now: datetime) -> dict[str, int]:
    """Leads per stage now. Counting every lead is the one figure no index makes cheap, so
    the count is kept and taken again when stages have changed and it is a minute old (or
    ten minutes old at all, for leads merged or erased)."""
    kept = list(Rollup.select(Rollup.key, Rollup.count, Rollup.refreshed_at)
                .where(Rollup.span == "now", Rollup.figure == "stage"))
    rows = {row.key: row.count for row in kept}
    last_change = StageChange.select(fn.MAX(StageChange.id)).scalar() or 0
    if kept:
        age = now - kept[0].refreshed_at
        unchanged = rows.pop(LAST_CHANGE, None) == last_change
        if age < timedelta(minutes=10) and (unchanged or age < timedelta(seconds=60)):
            return rows
    counts = dict(Lead.select(Lead.stage, fn.COUNT(Lead.id)).group_by(Lead.stage).tuples())
    with transaction():
        lock("rollups")
        Rollup.delete().where(Rollup.span == "now").execute()
        insert_rows(Rollup, [{"span": "now", "figure": "stage", "day": now.date(), "key": key,
                              "count": n, "refreshed_at": now}
                             for key, n in {**counts, LAST_CHANGE: last_change}.items()])
    return counts


# Reading -------------------------------------------------------------------------------

def per_day(figure: str, start: date, end: date) -> list[tuple[date, str, int]]:
    return [(_as_date(day), key, n) for day, key, n in
            Rollup.select(Rollup.day, Rollup.key, Rollup.count)
            .where(Rollup.span == "day", Rollup.figure == figure,
                   Rollup.day.between(start, end)).tuples()]


def totals(figure: str, start: date, end: date, today: date) -> Counter:
    """The figure's counts per key over [start, end]: whole months from the month rows,
    the days at either edge from the day rows, summed in SQL. A month that has not ended
    counts as whole when the range runs to today, since no later day has data yet."""
    months, edges = _split(start, end, today)
    parts = [(Rollup.span == "day") & Rollup.day.between(first, last) for first, last in edges]
    if months:
        parts.append((Rollup.span == "month") & Rollup.day.between(months[0], months[-1]))
    where = parts[0]
    for part in parts[1:]:
        where |= part
    rows = (Rollup.select(Rollup.key, fn.SUM(Rollup.count))
            .where(Rollup.figure == figure, where).group_by(Rollup.key).tuples())
    return Counter({key: int(n) for key, n in rows})


def _split(start: date, end: date, today: date):
    """Whole months inside the range (first days) and the edge day ranges outside them."""
    first = start if start.day == 1 else _month_end(start) + timedelta(days=1)
    months = []
    while first <= end and (_month_end(first) <= end or end >= today):
        months.append(first)
        first = _month_end(first) + timedelta(days=1)
    if not months:
        return [], [(start, end)]
    edges = [(start, months[0] - timedelta(days=1))] if start < months[0] else []
    last = _month_end(months[-1])
    if last < end:
        edges.append((last + timedelta(days=1), end))
    return months, edges


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
