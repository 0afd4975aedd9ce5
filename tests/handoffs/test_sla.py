"""The business clock as pure functions: weekends, holidays, DST both ways, 24x7, short
windows, promotions outside working hours, and the schedule of SLA actions."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from service.core.calendar import DAYS, Calendar
from service.core.runtime import runtime
from service.handoffs import sla
from service.nurture import sequences as nurture

LONDON = Calendar(always_open=False, zone="Europe/London", country="GB", subdivision="ENG")
NEW_YORK = Calendar(always_open=False, zone="America/New_York", country="US")


def at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize("start, hours, expected", [
    ("2026-11-23 10:00", 2, "2026-11-23 12:00"),          # Monday, inside hours
    ("2026-11-23 16:00", 2, "2026-11-24 10:00"),          # spills into Tuesday
    ("2026-11-27 16:00", 2, "2026-11-30 10:00"),          # Friday → Monday
    ("2026-11-28 11:00", 8, "2026-11-30 17:00"),          # promoted on Saturday
    ("2026-11-24 20:00", 1, "2026-11-25 10:00"),          # after hours
    ("2026-11-24 06:00", 1, "2026-11-24 10:00"),          # before hours
    ("2026-11-23 10:00", 0.25, "2026-11-23 10:15"),       # 15-minute window
    ("2026-11-23 16:50", 0.25, "2026-11-24 09:05"),       # short window across the night
    ("2026-12-24 16:00", 4, "2026-12-29 12:00"),          # Christmas, weekend, Boxing Day
    ("2026-11-23 09:00", 40, "2026-11-27 17:00"),         # a whole working week
])
def test_london_business_hours(start, hours, expected):
    assert LONDON.add(at(start, "Europe/London"), hours) == at(expected, "Europe/London")


def test_extra_closed_dates():
    calendar = Calendar(always_open=False, closed=(date(2026, 11, 24),))
    assert calendar.add(at("2026-11-23 16:00"), 2) == at("2026-11-25 10:00")


@pytest.mark.parametrize("start, hours, expected_utc", [
    ("2026-03-06 16:00", 2, "2026-03-09 14:00"),   # into EDT: Monday 10:00 is 14:00 UTC
    ("2026-10-30 16:00", 2, "2026-11-02 15:00"),   # into EST: Monday 10:00 is 15:00 UTC
])
def test_dst_changes_over_a_weekend(start, hours, expected_utc):
    assert NEW_YORK.add(at(start, "America/New_York"), hours) == at(expected_utc)


def test_dst_inside_working_hours():
    night = Calendar(always_open=False, zone="Europe/London", days=DAYS,
                         opens=time(0, 30), closes=time(3, 30))
    # 29 March 2026: clocks jump 01:00 → 02:00, the window is two real hours long.
    spring = at("2026-03-29 00:30", "Europe/London")
    assert night.add(spring, 2) == at("2026-03-29 03:30", "Europe/London")
    assert night.add(spring, 2.5) == at("2026-03-30 01:00", "Europe/London")
    # 25 October 2026: clocks fall back 02:00 → 01:00, the window is four real hours long.
    autumn = at("2026-10-25 00:30", "Europe/London")
    assert night.add(autumn, 3.5) == at("2026-10-25 03:00", "Europe/London")


NIGHT = Calendar(always_open=False, zone="Europe/London", opens=time(22), closes=time(6))


@pytest.mark.parametrize("moment, expected", [
    ("2026-11-25 01:00", "2026-11-25 01:00"),   # Wednesday 01:00: Tuesday's shift is open
    ("2026-11-25 06:00", "2026-11-25 22:00"),   # the shift has just ended
    ("2026-11-25 23:30", "2026-11-25 23:30"),
    ("2026-11-28 01:00", "2026-11-28 01:00"),   # Saturday 01:00: Friday's shift runs on
    ("2026-11-28 07:00", "2026-11-30 22:00"),   # then nothing until Monday night
    ("2026-11-30 01:00", "2026-11-30 22:00"),   # Sunday has no shift
])
def test_night_shift_open_at(moment, expected):
    assert NIGHT.open_at(at(moment, "Europe/London")) == at(expected, "Europe/London")


@pytest.mark.parametrize("start, hours, expected", [
    ("2026-11-25 01:00", 2, "2026-11-25 03:00"),      # after midnight, inside Tuesday's shift
    ("2026-11-25 05:00", 2, "2026-11-25 23:00"),      # one hour tonight, one tomorrow night
    ("2026-11-24 21:00", 8, "2026-11-25 06:00"),      # promoted before the shift: all of it
    ("2026-11-27 22:00", 8, "2026-11-28 06:00"),      # Friday's shift ends on Saturday
    ("2026-11-28 02:00", 8, "2026-12-01 02:00"),      # Saturday 02:00: 4 h left of Friday's
    ("2026-12-24 23:00", 8, "2026-12-29 23:00"),      # Christmas Eve's shift, then closed days
])
def test_night_shift_business_hours(start, hours, expected):
    calendar = Calendar(always_open=False, zone="Europe/London", opens=time(22),
                            closes=time(6), country="GB", subdivision="ENG")
    assert calendar.add(at(start, "Europe/London"), hours) == at(expected, "Europe/London")


def test_night_shift_across_dst():
    nightly = Calendar(always_open=False, zone="Europe/London", days=DAYS,
                           opens=time(22), closes=time(6))
    # Saturday 28 March 2026 22:00 GMT to Sunday 06:00 BST is seven real hours.
    spring = at("2026-03-28 22:00", "Europe/London")
    assert nightly.add(spring, 7) == at("2026-03-29 06:00", "Europe/London")
    sunday = at("2026-03-29 03:00", "Europe/London")
    assert nightly.open_at(sunday) == sunday
    assert nightly.add(sunday, 3.5) == at("2026-03-29 22:30", "Europe/London")
    # Saturday 24 October 2026 22:00 BST to Sunday 06:00 GMT is nine real hours.
    autumn = at("2026-10-24 22:00", "Europe/London")
    assert nightly.add(autumn, 9) == at("2026-10-25 06:00", "Europe/London")
    assert nightly.add(at("2026-10-25 04:00", "Europe/London"), 2.5) == at(
        "2026-10-25 22:30", "Europe/London")


def test_24x7():
    always = Calendar()
    assert always.add(at("2026-11-28 23:00"), 1.5) == at("2026-11-29 00:30")


def test_schedule_fractions_and_due_actions():
    policy = sla.Policy(decision_hours=8, remind_at=0.5, escalate_at=1.0, reassign_at=1.5,
                        calendar=Calendar(always_open=False))
    plan = sla.schedule(at("2026-11-23 09:00"), policy)
    assert (plan.remind_at, plan.due_at, plan.escalate_at, plan.reassign_at) == (
        at("2026-11-23 13:00"), at("2026-11-23 17:00"), at("2026-11-23 17:00"),
        at("2026-11-24 13:00"))
    assert sla.due_actions(plan, set(), at("2026-11-23 12:59")) == []
    assert sla.due_actions(plan, set(), at("2026-11-23 17:00")) == ["remind", "lapse",
                                                                    "escalate"]
    assert sla.due_actions(plan, {"remind", "lapse"}, at("2026-11-25 00:00")) == [
        "escalate", "reassign"]
    assert plan.next_action_at({"remind"}) == at("2026-11-23 17:00")
    assert plan.next_action_at(set(sla.ACTIONS)) is None
    off = sla.schedule(at("2026-11-23 09:00"), sla.Policy(8, 0, 1.0, 0, Calendar()))
    assert off.remind_at is None and off.reassign_at is None


def test_team_overrides(app):
    shipped = runtime.settings
    settings = shipped.model_copy(update={"sla": shipped.sla.model_copy(update={
        "calendar": "business",
        "teams": {"US": {"time_zone": "America/New_York", "decision_hours": 4}}})})
    us, default = sla.policy_for(settings, "US"), sla.policy_for(settings, "EMEA")
    assert (us.decision_hours, us.calendar.zone) == (4, "America/New_York")
    assert (default.decision_hours, default.calendar.zone) == (24.0, "UTC")


def test_bad_calendar_config_names_the_key():
    from service.core.config import ConfigError, load
    from tests.conftest import ROOT

    for env, message in (({"LEADBRIDGE_SLA__TIME_ZONE": "Mars/Base"}, "sla:"),
                         ({"LEADBRIDGE_SLA__WORKING_HOURS": "nine-five"}, "sla.working_hours"),
                         ({"LEADBRIDGE_SLA__HOLIDAYS_COUNTRY": "XX"}, "sla:"),
                         ({"LEADBRIDGE_SLA__WORKING_DAYS": "mon,funday"}, "working_days"),
                         ({"LEADBRIDGE_NURTURE__SEND_HOURS": "22:00-6"}, "nurture.send_hours"),
                         ({"LEADBRIDGE_NURTURE__TIME_ZONE": "Mars/Base"}, "nurture.time_zone"),
                         ({"LEADBRIDGE_NURTURE__SEND_DAYS": "mon,funday"}, "send_days")):
        with pytest.raises(ConfigError, match=message):
            load(ROOT / "config.toml", environ=env)


def test_hours_across_midnight_are_accepted():
    from service.core.config import load
    from tests.conftest import ROOT

    settings = load(ROOT / "config.toml", environ={
        "LEADBRIDGE_SLA__CALENDAR": "business", "LEADBRIDGE_SLA__WORKING_HOURS": "22:00-06:00",
        "LEADBRIDGE_NURTURE__SEND_HOURS": "22:00 - 06:00"})
    shift = (at("2026-11-23 22:00"), at("2026-11-24 06:00"))
    assert sla.policy_for(settings, None).calendar.window(date(2026, 11, 23)) == shift
    assert nurture.send_calendar(settings).window(date(2026, 11, 23)) == shift
