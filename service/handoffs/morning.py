"""The morning email: a rep with handoffs waiting gets one short email a day, at
handoff.morning_email_time in the rep's own time zone, on the working days of the rep's
team (its [sla] calendar; every day for a 24x7 one), never while inactive or away. The
rep's local day is claimed by a conditional update, so repeated sweeps and several
workers send it once."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from peewee import JOIN

from service.core import outbox
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
    waiting; returns how many this call queued."""
    if not settings.handoff.morning_email_time:
        return 0
    waiting = Handoff.select(Handoff.rep).where(Handoff.status == HandoffStatus.PENDING)
    reps = list(Rep.select(Rep, Team).join(Team, JOIN.LEFT_OUTER)  # read whole before writing
                .where(Rep.active, Rep.id.in_(waiting)).order_by(Rep.id))
    queued = 0
    for rep in reps:
        day = morning_of(rep, settings, now)
        if day is not None and claim_and_queue(rep, day, now):
            queued += 1
    return queued


def morning_of(rep: Rep, settings: Settings, now: datetime) -> date | None:
    """The rep's local date when `now` falls in the rep's morning email window on a working
    day the rep is not away, else None."""
    zone = rep_zone(rep.time_zone)
    local = now.astimezone(zone)
    today = local.date()
    start = datetime.combine(today, time.fromisoformat(settings.handoff.morning_email_time),
                             zone)
    if not start <= local < start + MORNING_WINDOW or rep.is_away(today):
        return None
    calendar = policy_for(settings, rep.team.name if rep.team else None).calendar
    if not calendar.always_open and not calendar.is_open_day(today):
        return None
    return today


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
