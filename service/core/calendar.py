"""Working time: business hours in a time zone, working days, public holidays and extra
closed dates (or 24x7). The SLA clock and nurture's send hours both run on it. Pure
functions of their arguments; time in and out is aware UTC."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays

if TYPE_CHECKING:  # the settings' checks use this module
    pass

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


NO_HOURS = "the calendar has no working hours in the next ten years"


@dataclass(frozen=True)
class Calendar:
    always_open: bool = True
    zone: str = "UTC"
    days: tuple[str, ...] = DAYS[:5]
    opens: time = time(9)
    closes: time = time(17)
    country: str = ""
    subdivision: str = ""
    closed: tuple[date, ...] = ()


    @cached_property
    def _tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)


    @cached_property
    def _holidays(self):
        if not self.country:
            return {}
        return holidays.country_holidays(self.country, subdiv=self.subdivision or None)


    def is_open_day(self, day: date) -> bool:
        return (DAYS[day.weekday()] in self.days and day not in self.closed
                and day not in self._holidays)


    def window(self, day: date) -> tuple[datetime, datetime]:
        """The day's working hours as UTC instants (real elapsed time across DST changes)."""
        start = datetime.combine(day, self.opens, self._tz).astimezone(UTC)
        end_day = day + timedelta(days=1) if self.closes <= self.opens else day
        end = datetime.combine(end_day, self.closes, self._tz).astimezone(UTC)
        return start, end


    def add(self, start: datetime, hours: float) -> datetime:
        """The moment `hours` business hours after `start`."""
        remaining = timedelta(hours=hours)
        if self.always_open or remaining <= timedelta(0):
            return start + remaining
        for opens, closes in self._windows(start):
            begin = max(opens, start)
            if begin + remaining <= closes:
                return begin + remaining
            remaining -= closes - begin
        raise ValueError(NO_HOURS)


    def open_at(self, moment: datetime) -> datetime:
        """The first moment at or after `moment` inside working hours."""
        if self.always_open:
            return moment
        for opens, _ in self._windows(moment):
            return max(opens, moment)
        raise ValueError(NO_HOURS)


    def _windows(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working windows that close after `start`, in order. A window belongs to the day
        it opens, so a night shift opened yesterday may still be open: start a day early."""
        day = start.astimezone(self._tz).date() - timedelta(days=1)
        for _ in range(3700):  # ten years of days: a calendar with no open day never ends
            if self.is_open_day(day):
                opens, closes = self.window(day)
                if start < closes:
                    yield opens, closes
            day += timedelta(days=1)


    def add_days(self, moment: datetime, days: int, *, business: bool) -> datetime:
        """`days` later at the same local time; business days skip closed days."""
        local = moment.astimezone(self._tz)
        if not business or self.always_open:
            day = local.date() + timedelta(days=days)
        else:
            day, left = local.date(), days
            while left > 0:
                day += timedelta(days=1)
                left -= self.is_open_day(day)
        return datetime.combine(day, local.timetz().replace(tzinfo=None), self._tz).astimezone(UTC)


def hours_from(text: str, key: str) -> tuple[time, time]:
    """Opening and closing times from "09:00-17:00". Closing at or before opening runs past
    midnight: "22:00-06:00" is a night shift, which belongs to the day it starts."""
    opens, _, closes = text.partition("-")
    try:
        return time.fromisoformat(opens.strip()), time.fromisoformat(closes.strip())
    except ValueError:
        raise ValueError(f"{key} must be hours like 09:00-17:00 or 22:00-06:00, "
                         f"got {text!r}") from None


def calendar_from(values: dict) -> Calendar:
    """The calendar [sla]-shaped values describe (a team's overrides merged in)."""
    opens, closes = hours_from(values["working_hours"], "sla.working_hours")
    return Calendar(
        always_open=values["calendar"] == "24x7", zone=values["time_zone"],
        days=tuple(values["working_days"]), opens=opens, closes=closes,
        country=values["holidays_country"], subdivision=values["holidays_subdivision"],
        closed=tuple(d if isinstance(d, date) else date.fromisoformat(str(d))
                     for d in values["closed_dates"]))
