"""Daily counters for what intake drops on purpose (honeypot hits, rate-limited posts)."""

from __future__ import annotations

from datetime import datetime

from service.core.models import IntakeStat


def count(source: str, event: str, *, now: datetime) -> None:
    day = now.strftime("%Y-%m-%d")
    (IntakeStat.insert(day=day, source=source, event=event, count=1)
     .on_conflict(conflict_target=[IntakeStat.day, IntakeStat.source, IntakeStat.event],
                  update={IntakeStat.count: IntakeStat.count + 1})
     .execute())


def total(source: str, event: str) -> int:
    return sum(row.count for row in IntakeStat.select().where(
        IntakeStat.source == source, IntakeStat.event == event))
