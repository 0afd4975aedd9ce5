"""Daily counters for what intake drops on purpose (honeypot hits, rate-limited posts)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from peewee import Case, fn

from service.core.models import IntakeStat

EVENTS = ("honeypot", "rate_limited")


class Recent(NamedTuple):
    """Counts over the windows the panel shows, each ending today (UTC days)."""
    today: int
    last_7_days: int
    last_30_days: int


WINDOW_DAYS = (1, 7, 30)  # Recent's fields, in days with today included


def count(source: str, event: str, *, now: datetime) -> None:
    day = now.strftime("%Y-%m-%d")
    (IntakeStat.insert(day=day, source=source, event=event, count=1)
     .on_conflict(conflict_target=[IntakeStat.day, IntakeStat.source, IntakeStat.event],
                  update={IntakeStat.count: IntakeStat.count + 1})
     .execute())


def total(source: str, event: str) -> int:
    return sum(row.count for row in IntakeStat.select().where(
        IntakeStat.source == source, IntakeStat.event == event))


def recent(now: datetime, sources: Iterable[str] = ()) -> dict[str, dict[str, Recent]]:
    """Per source and event, what was dropped today, in the last 7 and in the last 30 days,
    from one grouped query. Every source given is there, with zeros when nothing was."""
    today = now.strftime("%Y-%m-%d")
    firsts = [(now - timedelta(days=days - 1)).strftime("%Y-%m-%d") for days in WINDOW_DAYS]
    sums = [fn.SUM(Case(None, [(IntakeStat.day >= first, IntakeStat.count)], 0))
            for first in firsts]
    rows = (IntakeStat.select(IntakeStat.source, IntakeStat.event, *sums)
            .where(IntakeStat.day.between(firsts[-1], today))
            .group_by(IntakeStat.source, IntakeStat.event).tuples())
    nothing = Recent(0, 0, 0)
    figures = {source: dict.fromkeys(EVENTS, nothing) for source in sources}
    for source, event, *counts in rows:
        figures.setdefault(source, dict.fromkeys(EVENTS, nothing))[event] = Recent(
            *(int(n) for n in counts))
    return dict(sorted(figures.items()))
