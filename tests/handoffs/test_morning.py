"""The morning email: at 08:00 in each rep's own time zone, on working days, to reps with
handoffs waiting; one per rep and local day however often and wherever the sweep runs."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from service import lifecycle
from service.core.models import OutboxEmail, Rep
from service.core.runtime import runtime
from service.handoffs import morning
from tests.conftest import run_worker
from tests.factories import at_once, promoted
from tests.test_end_to_end import BANT

FRIDAY = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOKYO_EIGHT = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # Monday 30 Nov, 08:00 in Tokyo
NEW_YORK_EIGHT = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # Monday 30 Nov, 08:00 in New York
MORNING = re.compile(r"^\d+ leads? (is|are) waiting for your decision")
QUEUE_LINK = re.compile(r"http://localhost(/r/[A-Za-z0-9_.-]+)")


@pytest.fixture
def app(make_app):
    return make_app(**{"sla.calendar": "business"})  # Monday to Friday


def morning_mail(smtp, address: str | None = None) -> list:
    return [m for m in smtp.messages if MORNING.match(str(m["Subject"]))
            and (address is None or address in m["To"])]


def sweep() -> None:
    """The morning sweep through the queue and a real worker, which also sends the email."""
    runtime.queue.enqueue("workers.jobs.send_morning_emails")
    run_worker()


@pytest.fixture
def reps(app, smtp):
    """Kenji (Tokyo) has Ada and Bob waiting, Nora (New York) Cid; Lena (London) decided
    hers; Ivy (inactive) and Otto (out of office) have one each."""
    with time_machine.travel(FRIDAY, tick=False):
        made = {name: Rep.create(email=f"{name}@example.com", name=name.title(), time_zone=zone)
                for name, zone in (("kenji", "Asia/Tokyo"), ("nora", "America/New_York"),
                                   ("lena", "Europe/London"), ("ivy", "Europe/Paris"),
                                   ("otto", "Europe/Berlin"))}
        handoffs = {}
        for who, rep, due in (("ada", "kenji", 3), ("bob", "kenji", 5), ("cid", "nora", 4),
                              ("dee", "lena", 4), ("eve", "ivy", 4), ("fay", "otto", 4)):
            handoffs[who] = promoted(made[rep], f"{who}@example.com", at=FRIDAY,
                                     window=timedelta(days=due), activity="pricing_page_view",
                                     fields={"first_name": who.title(),
                                             "company": f"{who.title()} Co"})
        lifecycle.accept(handoffs["dee"].id, bant=BANT, notes="", actor="lena@example.com",
                         now=FRIDAY, requires=[])
        Rep.update(active=False).where(Rep.email == "ivy@example.com").execute()
        Rep.update(out_of_office=True).where(Rep.email == "otto@example.com").execute()
        run_worker()
    smtp.messages.clear()
    return made, handoffs


def test_eight_in_the_morning_in_each_reps_time_zone(app, reps, smtp):
    _, handoffs = reps
    with time_machine.travel(TOKYO_EIGHT - timedelta(minutes=1), tick=False) as clock:
        sweep()
        assert morning_mail(smtp) == []
        for moment in (TOKYO_EIGHT, TOKYO_EIGHT + timedelta(minutes=1),
                       TOKYO_EIGHT + timedelta(minutes=30), TOKYO_EIGHT + timedelta(hours=2)):
            clock.move_to(moment)
            sweep()
        [kenji] = morning_mail(smtp)
        assert kenji["To"] == "Kenji <kenji@example.com>"
        assert kenji["Subject"] == ("2 leads are waiting for your decision — next deadline "
                                    "Mon 30 Nov 2026, 21:00 (Asia/Tokyo)")
        text = kenji.get_body(("plain",)).get_content()
        assert text.index("Ada (Ada Co): by Mon 30 Nov 2026, 21:00 (Asia/Tokyo), 13 h 0 min left") \
            < text.index("Bob (Bob Co): by Wed 02 Dec 2026, 21:00 (Asia/Tokyo), 2 d 13 h left")
        page = app.test_client().get(QUEUE_LINK.search(text).group(1))
        assert page.status_code == 200 and "Ada" in page.text and "Bob" in page.text
        assert "Cid" not in page.text

        clock.move_to(NEW_YORK_EIGHT - timedelta(minutes=1))
        sweep()
        assert len(morning_mail(smtp)) == 1
        clock.move_to(NEW_YORK_EIGHT)
        sweep()
        sweep()
        [nora] = morning_mail(smtp, "nora@example.com")
        assert nora["Subject"] == ("1 lead is waiting for your decision — next deadline "
                                   "Tue 01 Dec 2026, 07:00 (America/New_York)")
        assert len(morning_mail(smtp)) == 2, "none for Lena (nothing waits), Ivy, Otto"

        lifecycle.accept(handoffs["ada"].id, bant=BANT, notes="", actor="kenji@example.com",
                         now=NEW_YORK_EIGHT, requires=[])
        lifecycle.accept(handoffs["bob"].id, bant=BANT, notes="", actor="kenji@example.com",
                         now=NEW_YORK_EIGHT, requires=[])
        clock.move_to(TOKYO_EIGHT + timedelta(days=1))
        sweep()
        clock.move_to(NEW_YORK_EIGHT + timedelta(days=1))
        sweep()
    assert len(morning_mail(smtp, "kenji@example.com")) == 1, "nothing waits on Tuesday"
    assert len(morning_mail(smtp, "nora@example.com")) == 2, "one each morning"
    assert not morning_mail(smtp, "lena@") + morning_mail(smtp, "ivy@") \
        + morning_mail(smtp, "otto@")


def test_one_per_rep_and_day_when_two_workers_sweep_at_once(app, reps, smtp):
    with time_machine.travel(TOKYO_EIGHT + timedelta(minutes=5), tick=False):
        queued = at_once(lambda i: morning.send_due(settings=runtime.settings,
                                                    now=datetime.now(UTC)), 6, database=True)
        run_worker()
    assert (queued.count(1), queued.count(0)) == (1, 5), queued
    assert len(morning_mail(smtp, "kenji@example.com")) == 1
    assert OutboxEmail.select().where(OutboxEmail.template == "rep_morning").count() == 1


def test_no_morning_email_at_the_weekend_or_out_of_its_window(app, reps, smtp):
    saturday_eight = NEW_YORK_EIGHT + timedelta(days=5)  # Saturday 5 Dec, 08:00 in New York
    late = NEW_YORK_EIGHT + timedelta(hours=3)  # Monday 11:00 in New York: too late
    for moment in (saturday_eight, saturday_eight + timedelta(days=1), late):
        with time_machine.travel(moment, tick=False):
            sweep()
    assert morning_mail(smtp, "nora@example.com") == []
    with time_machine.travel(late - timedelta(minutes=1), tick=False):
        sweep()
    assert len(morning_mail(smtp, "nora@example.com")) == 1


def with_morning_time(settings, value: str):
    return settings.model_copy(update={"handoff": settings.handoff.model_copy(
        update={"morning_email_time": value})})


def test_the_time_is_a_setting_and_empty_switches_it_off(app, reps):
    made, _ = reps
    nora = made["nora"]
    half_past_seven = NEW_YORK_EIGHT - timedelta(minutes=30)
    settings = with_morning_time(runtime.settings, "07:30")
    assert morning.morning_of(nora, settings, half_past_seven - timedelta(minutes=1)) is None
    assert morning.morning_of(nora, settings, half_past_seven).isoformat() == "2026-11-30"
    assert morning.morning_of(nora, runtime.settings, half_past_seven) is None
    off = with_morning_time(runtime.settings, "")
    assert morning.send_due(settings=off, now=NEW_YORK_EIGHT) == 0
    assert morning.send_due(settings=runtime.settings, now=NEW_YORK_EIGHT) == 1


class Statements(logging.Handler):
    """The SQL statements peewee runs (it logs each one at DEBUG) while in a `with`."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.sql: list[str] = []
        self.logger = logging.getLogger("peewee")

    def emit(self, record: logging.LogRecord) -> None:
        # (sql, params), or its text once the logs' scrubbing has rewritten the record
        sql = record.msg[0] if isinstance(record.msg, tuple) else record.getMessage()
        self.sql.append(sql.lstrip("(\"' ").upper())

    def writes(self) -> list[str]:
        return [s for s in self.sql if s.startswith(("INSERT", "UPDATE", "DELETE", "BEGIN"))]

    def __enter__(self):
        self.level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


def test_a_day_already_claimed_costs_no_write(app, reps, smtp):
    """The sweep runs every minute through the three-hour window: once Kenji's day is
    claimed, a sweep reads the reps and writes nothing."""
    with time_machine.travel(TOKYO_EIGHT, tick=False):
        with Statements() as first:
            assert morning.send_due(settings=runtime.settings, now=TOKYO_EIGHT) == 1
    assert any(s.startswith("UPDATE") for s in first.writes())
    assert any(s.startswith("INSERT") for s in first.writes()), "the email is queued"
    for minutes in (1, 30, 179):
        moment = TOKYO_EIGHT + timedelta(minutes=minutes)
        with time_machine.travel(moment, tick=False), Statements() as again:
            assert morning.send_due(settings=runtime.settings, now=moment) == 0
        assert again.writes() == [], minutes
        assert len(again.sql) == 1 and again.sql[0].startswith("SELECT"), again.sql
    run_worker()
    assert len(morning_mail(smtp, "kenji@example.com")) == 1


def zone_rep(zone: str) -> Rep:
    return Rep.create(email=f"{zone.lower().replace('/', '.')}@example.com", time_zone=zone)


def day_of(rep: Rep, settings, moment: datetime) -> str | None:
    """The local day whose morning it is at `moment`, on a 24x7 calendar."""
    every_day = settings.model_copy(update={"sla": settings.sla.model_copy(
        update={"calendar": "24x7"})})
    day = morning.morning_of(rep, every_day, moment)
    return day.isoformat() if day else None


def test_the_window_is_three_real_hours_across_the_dst_changes(app):
    """At 00:30 in New York the window runs past 02:00, where the clocks change: it stays
    three hours of real time, 05:30-08:30 UTC on 8 March 2026 (clocks forward; 00:30 EST to
    04:30 EDT) and 04:30-07:30 UTC on 1 November 2026 (clocks back; 00:30 EDT to 02:30
    EST), not the wall clock's 00:30-03:30 (two hours, then four)."""
    rep = zone_rep("America/New_York")
    settings = with_morning_time(runtime.settings, "00:30")
    spring = datetime(2026, 3, 8, 5, 30, tzinfo=UTC)
    assert day_of(rep, settings, spring - timedelta(seconds=1)) is None
    assert day_of(rep, settings, spring) == "2026-03-08"
    assert day_of(rep, settings, datetime(2026, 3, 8, 8, 0, tzinfo=UTC)) == "2026-03-08"
    assert day_of(rep, settings, datetime(2026, 3, 8, 8, 29, tzinfo=UTC)) == "2026-03-08"
    assert day_of(rep, settings, datetime(2026, 3, 8, 8, 30, tzinfo=UTC)) is None
    autumn = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)
    assert day_of(rep, settings, autumn - timedelta(seconds=1)) is None
    assert day_of(rep, settings, autumn) == "2026-11-01"
    assert day_of(rep, settings, datetime(2026, 11, 1, 7, 29, tzinfo=UTC)) == "2026-11-01"
    assert day_of(rep, settings, datetime(2026, 11, 1, 7, 30, tzinfo=UTC)) is None
    assert day_of(rep, settings, datetime(2026, 11, 1, 8, 0, tzinfo=UTC)) is None  # 03:00 EST


def test_a_late_morning_time_runs_past_midnight(app, reps, smtp):
    """23:30 in New York (04:30 UTC): the window runs to 02:30, still the morning of the
    day it started on, which is the day claimed and whose calendar counts."""
    made, _ = reps
    nora = made["nora"]
    settings = with_morning_time(runtime.settings, "23:30")
    start = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)  # Monday 30 Nov, 23:30 in New York
    assert day_of(nora, settings, start - timedelta(minutes=1)) is None
    for after in (timedelta(0), timedelta(minutes=31), timedelta(hours=2, minutes=59)):
        assert day_of(nora, settings, start + after) == "2026-11-30", after
    assert day_of(nora, settings, start + timedelta(hours=3)) is None
    saturday = datetime(2026, 12, 6, 4, 45, tzinfo=UTC)  # Saturday 5 Dec, 23:45 in New York
    assert morning.morning_of(nora, settings, saturday) is None, "not a working day"
    assert morning.morning_of(nora, settings, saturday + timedelta(days=1)) is None

    at_half_past_midnight = start + timedelta(hours=1)
    with time_machine.travel(at_half_past_midnight, tick=False):
        assert morning.send_due(settings=settings, now=at_half_past_midnight) == 1
        assert morning.send_due(settings=settings, now=at_half_past_midnight
                                + timedelta(hours=1)) == 0
        run_worker()
    assert len(morning_mail(smtp, "nora@example.com")) == 1
    assert Rep.get_by_id(nora.id).morning_sent_on.isoformat() == "2026-11-30"
    next_night = start + timedelta(days=1, minutes=10)  # Tuesday 1 Dec, 23:40
    assert morning.send_due(settings=settings, now=next_night) == 1
    assert Rep.get_by_id(nora.id).morning_sent_on.isoformat() == "2026-12-01"
