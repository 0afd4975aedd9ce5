"""The morning email: a rep with handoffs waiting gets one short email a day, at
handoff.morning_email_time in the rep's own time zone, on the working days of the rep's
team (its [sla] calendar; every day for a 24x7 one), never while inactive or away. The
window is three hours of real time from that local time (whatever DST does that night, and
past midnight for a late time). The rep's local day is claimed by a conditional update, so
repeated sweeps and several workers send it once; a day already claimed costs no write."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from peewee import JOIN

from service.core import outbox
from service.core.calendar import Calendar
from service.core.db import transaction
from service.core.models import Handoff, Rep, Team
from service.core.settings import Settings
from service.core.statuses import HandoffStatus
from service.handoffs.sla import policy_for

# A sweep that was stopped for longer skips the day rather than send "this morning" after
# lunch.
MORNING_WINDOW = timedelta(hours=3)


def send_due(*, settings: Settings, now: datetime) -> int:
    """Queue the morning email of each rep whose morning it is and who has a handoff
    waiting; returns how many this call queued. A rep whose day is claimed already is
    skipped without a write: the sweep runs every minute through the window."""
    if not settings.handoff.morning_email_time:
        return 0
    waiting = Handoff.select(Handoff.rep).where(Handoff.status == HandoffStatus.PENDING)
    reps = list(Rep.select(Rep, Team).join(Team, JOIN.LEFT_OUTER)  # read whole before writing
                .where(Rep.active, Rep.id.in_(waiting)).order_by(Rep.id))
    calendars: dict[str | None, Calendar] = {}
    queued = 0
    for rep in reps:
        day = morning_of(rep, settings, now, team_calendar(rep, settings, calendars))
        if day is not None and not sent_on(rep, day) and claim_and_queue(rep, day, now):
            queued += 1
    return queued


def team_calendar(rep: Rep, settings: Settings, calendars: dict) -> Calendar:
    """The calendar of the rep's team, made once per team and sweep."""
    team = rep.team.name if rep.team else None
    if team not in calendars:
        calendars[team] = policy_for(settings, team).calendar
    return calendars[team]


def sent_on(rep: Rep, day: date) -> bool:
    """The rep's morning email of that day went already (as read before the sweep wrote;
    the claim's conditional update stays the guard against another sweep)."""
    return rep.morning_sent_on is not None and rep.morning_sent_on >= day


def morning_of(rep: Rep, settings: Settings, now: datetime,
               calendar: Calendar | None = None) -> date | None:
    """The rep's local date whose morning email window `now` falls in, on a working day
    the rep is not away, else None. The window is MORNING_WINDOW of real time from the
    local start, so it keeps its length across a DST change and may run past midnight
    (23:30 runs to 02:30 of the next day, which is still the morning of the day before)."""
    day = window_day(rep_zone(rep.time_zone), settings.handoff.morning_email_time, now)
    if day is None or rep.is_away(day):
        return None
    calendar = calendar or policy_for(settings, rep.team.name if rep.team else None).calendar
    if not calendar.always_open and not calendar.is_open_day(day):
        return None
    return day


def window_day(zone: ZoneInfo, start_time: str, now: datetime) -> date | None:
    """The local day (today's or yesterday's) whose window holds the instant `now`."""
    today = now.astimezone(zone).date()
    for day in (today, today - timedelta(days=1)):
        start = datetime.combine(day, time.fromisoformat(start_time), zone).astimezone(UTC)
        if start <= now < start + MORNING_WINDOW:
            return day
    return None


def claim_and_queue(rep: Rep, day: date, now: datetime) -> bool:
    """Claim the rep's local day and write the email in one transaction: True when this call
    did, False when the day was claimed already."""
    with transaction():
        claimed = Rep.update(morning_sent_on=day).where(
            Rep.id == rep.id,
            Rep.morning_sent_on.is_null() | (Rep.morning_sent_on < day)).execute()
        if claimed:
            outbox.queue_email("rep_morning", to_address=rep.email, to_name=rep.name, now=now,
                               context={"rep_id": rep.id})
    return bool(claimed)


def rep_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
