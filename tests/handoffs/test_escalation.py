"""SLA actions through real RQ jobs and SMTP, with the clock moved by time-machine:
reminder at 50 %, escalation at 100 %, reassignment at 150 %, each exactly once; a decision
cancels what is left; two sweeping processes never send twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from service import lifecycle
from service.core.db import utcnow
from service.core.models import Handoff, OutboxEmail, Rep
from service.core.runtime import runtime
from service.handoffs import escalation
from tests.conftest import ROOT, run_worker
from tests.factories import promoted, rep_in_team, statements_run

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SLA = {"sla.calendar": "24x7", "sla.decision_hours": 2.0, "sla.remind_at": 0.5,
       "sla.escalate_at": 1.0, "sla.reassign_at": 1.5}


NIGHT_SHIFT = {**SLA, "sla.calendar": "business", "sla.time_zone": "Europe/London",
               "sla.working_hours": "22:00-06:00", "sla.decision_hours": 8.0,
               "sla.reassign_at": 0.0}


def team_app(make_app, settings):
    app = make_app(**settings)
    rep_in_team("riley@example.com", name="Riley", manager_email="sam@example.com")
    rep_in_team("jordan@example.com", name="Jordan")
    return app


@pytest.fixture
def sla_app(make_app):
    return team_app(make_app, SLA)


def promote(app, email="ada@example.com", at=START):
    """A lead promoted to Riley."""
    return promoted(Rep.get(Rep.email == "riley@example.com"), email, at=at)


def sweep_job():
    runtime.queue.enqueue("workers.jobs.sweep_sla")
    run_worker()


def received(smtp) -> list[tuple[str, str]]:
    return [(m["To"], m["Subject"].split(":")[0]) for m in smtp.messages]


def test_reminder_escalation_reassignment_once_each(sla_app, smtp):
    with time_machine.travel(START, tick=False) as clock:
        handoff = promote(sla_app)
        run_worker()
        assert received(smtp) == [("Riley <riley@example.com>", "New MQL for you")]
        clock.move_to(START + timedelta(minutes=59))
        sweep_job()
        assert len(smtp.messages) == 1
        clock.move_to(START + timedelta(hours=1))
        sweep_job()
        sweep_job()
        assert received(smtp)[1:] == [("Riley <riley@example.com>", "Reminder")]
        assert "left" in smtp.messages[1]["Subject"] and "/h/" in smtp.text(1)
        clock.move_to(START + timedelta(hours=2, minutes=5))
        sweep_job()
        sweep_job()
        escalations = sorted(received(smtp)[2:])
        assert escalations == [("mia@example.com", "Overdue"), ("sam@example.com", "Overdue")]
        assert f"/admin/pending/reassign/?ids={handoff.id}" in smtp.text(2)
        clock.move_to(START + timedelta(hours=3))
        sweep_job()
        sweep_job()
        assert sorted(received(smtp)[4:]) == [
            ("Jordan <jordan@example.com>", "New MQL for you"),
            ("Riley <riley@example.com>", "ada@example.com was reassigned to Jordan")]
    old = Handoff.get_by_id(handoff.id)
    new = Handoff.get(Handoff.replaces == handoff.id)
    assert (old.status, new.status, new.rep.email) == ("withdrawn", "pending", "jordan@example.com")
    assert old.reminded_at == START + timedelta(hours=1)
    assert old.escalated_at == START + timedelta(hours=2, minutes=5)
    assert old.reassigned_at == START + timedelta(hours=3)
    assert new.due_at == START + timedelta(hours=5), "a fresh window for the new rep"


def test_decision_cancels_later_actions(sla_app, smtp):
    with time_machine.travel(START, tick=False) as clock:
        handoff = promote(sla_app)
        clock.move_to(START + timedelta(hours=1))
        sweep_job()
        clock.move_to(START + timedelta(hours=1, minutes=30))
        lifecycle.accept(handoff.id, bant={"need": "clear"}, notes="", actor="riley",
                         now=utcnow(), requires=[])
        for hours in (2, 3, 10):
            clock.move_to(START + timedelta(hours=hours))
            sweep_job()
    templates = [row.template for row in OutboxEmail.select().order_by(OutboxEmail.id)]
    assert templates == ["rep_handoff", "sla_reminder", "decision_feedback"]
    assert Handoff.get_by_id(handoff.id).sla_met is True


def test_night_shift_deadline_runs_past_midnight_and_the_weekend(make_app, smtp):
    app = team_app(make_app, NIGHT_SHIFT)
    saturday = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # 02:00 in London: Friday's shift
    tuesday = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 4 h to Saturday 06:00, 4 from Monday 22:00
    with time_machine.travel(saturday, tick=False) as clock:
        handoff = promote(app, at=saturday)
        assert (handoff.remind_due_at, handoff.due_at) == (saturday + timedelta(hours=4), tuesday)
        run_worker()
        clock.move_to(saturday + timedelta(hours=4))
        sweep_job()
        assert received(smtp)[1:] == [("Riley <riley@example.com>", "Reminder")]
        clock.move_to(tuesday - timedelta(minutes=1))
        sweep_job()
        assert len(smtp.messages) == 2
        clock.move_to(tuesday)
        sweep_job()
    assert sorted(received(smtp)[2:]) == [("mia@example.com", "Overdue"),
                                          ("sam@example.com", "Overdue")]


def test_two_processes_sweep_500_handoffs_once(sla_app, settings_overrides):
    earlier = START - timedelta(hours=2, minutes=30)
    for i in range(500):
        promote(sla_app, email=f"lead{i}@example.com", at=earlier)
    OutboxEmail.delete().execute()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    no_morning_email = {"handoff.morning_email_time": ""}  # `sweep` runs every sweep
    for key, value in {**settings_overrides, **SLA, "sla.reassign_at": 0.0,
                       **no_morning_email}.items():
        env["LEADBRIDGE_" + key.upper().replace(".", "__")] = str(value)
    script = ("import sys, time_machine; from service.ops.cli import main\n"
              "with time_machine.travel(sys.argv[1], tick=False): main(['sweep'])")
    sweeps = [subprocess.Popen([sys.executable, "-c", script, START.isoformat()], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in sweeps]
    assert [p.returncode for p in sweeps] == [0, 0], outputs
    rows = list(OutboxEmail.select())
    per_email = Counter((r.template, r.handoff_id, r.to_address) for r in rows)
    assert max(per_email.values()) == 1
    kinds = Counter(r.template for r in rows)
    assert kinds == {"sla_reminder": 500, "sla_escalation": 1000}
    said = " ".join(out for out, _ in outputs)
    assert "remind" in said and Handoff.select().where(Handoff.reminded_at.is_null()).count() == 0


def sweep_at(clock, *hours):
    for hour in hours:
        clock.move_to(START + timedelta(hours=hour))
        sweep_job()


def subjects(smtp, to: str) -> list[str]:
    return [m["Subject"] for m in smtp.messages if to in m["To"]]


def test_an_mql_never_goes_back_to_a_rep_who_let_it_lapse(sla_app, smtp):
    """Riley lets it lapse, Jordan gets it and lets it lapse too: it does not go back to
    Riley; the manager is told once that nobody has decided it."""
    from service.reports import figures as reports

    with time_machine.travel(START, tick=False) as clock:
        handoff = promote(sla_app)
        run_worker()
        sweep_at(clock, 1, 2, 3, 4, 5, 6, 7, 10, 30, 60)
    assert [s.split(":")[0] for s in subjects(smtp, "riley@")] == [
        "New MQL for you", "Reminder", "ada@example.com was reassigned to Jordan"]
    assert [s.split(":")[0] for s in subjects(smtp, "jordan@")] == ["New MQL for you",
                                                                    "Reminder"]
    nobody = [s for s in subjects(smtp, "sam@") if s.startswith("Nobody has decided")]
    assert nobody == ["Nobody has decided ada@example.com: please step in"]
    text = next(m for m in smtp.messages if m["Subject"] == nobody[0]).get_body(
        ("plain",)).get_content()
    assert "Riley: let it lapse" in text and "Jordan: let it lapse" in text
    last = Handoff.get(Handoff.replaces == handoff.id)
    assert (last.status, last.rep.email) == ("pending", "jordan@example.com")
    day = START.date()
    figures = reports.sla(reports.Range(day, day, "day"))
    assert figures["by_rep"] == [("jordan@example.com", 1, 1, 1),
                                 ("riley@example.com", 1, 1, 1)], "breaches match escalations"


def test_reassignments_stop_after_the_limit(sla_app, smtp):
    rep_in_team("sasha@example.com", name="Sasha")
    with time_machine.travel(START, tick=False) as clock:
        promote(sla_app)
        run_worker()
        sweep_at(clock, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 20, 40)
    new_mql = sorted(m["To"] for m in smtp.messages if m["Subject"].startswith("New MQL"))
    assert new_mql == ["Jordan <jordan@example.com>", "Riley <riley@example.com>",
                       "Sasha <sasha@example.com>"], "two reassignments (the default), each once"
    assert len([s for s in subjects(smtp, "sam@") if s.startswith("Nobody")]) == 1
    assert Handoff.select().where(Handoff.status == "pending").count() == 1


def test_the_manager_hears_once_an_episode_even_after_handing_it_on(sla_app, smtp):
    from service.handoffs.actions import reassign

    with time_machine.travel(START, tick=False) as clock:
        handoff = promote(sla_app)
        sweep_at(clock, 1, 2, 3, 4, 5, 6)  # Riley, then Jordan let it lapse: the manager hears
        last = Handoff.get(Handoff.status == "pending")
        riley = Rep.get(Rep.email == "riley@example.com")
        reassign(last.id, rep_id=riley.id, actor="sam@example.com", now=utcnow(),
                 settings=runtime.settings)
        sweep_at(clock, 7, 8, 9, 10, 20)
    assert Handoff.select().where(Handoff.lead == handoff.lead_id).count() == 3
    assert len([s for s in subjects(smtp, "sam@") if s.startswith("Nobody")]) == 1


def test_a_sweep_runs_as_many_statements_for_50_reminders_as_for_5(sla_app):
    """Claims, outbox rows and the next action times are written set-based: per chunk, not
    per handoff."""
    def remind(count: int, at: datetime) -> int:
        now = at + timedelta(hours=1, minutes=10)  # reminders (at 1 h) due, nothing else
        with time_machine.travel(at, tick=False) as clock:
            for i in range(count):
                promote(sla_app, email=f"lead{at.hour}-{i}@example.com", at=at)
            clock.move_to(now)
            statements = len(statements_run(
                lambda: escalation.sweep(settings=runtime.settings, now=now)))
        batch = Handoff.select().where(Handoff.promoted_at == at)
        assert [h.reminded_at for h in batch] == [now] * count
        assert [h.sla_next_at for h in batch] == [at + timedelta(hours=2)] * count  # deadline
        assert OutboxEmail.select().where(OutboxEmail.template == "sla_reminder",
                                          OutboxEmail.handoff.in_(batch)).count() == count
        Handoff.update(sla_next_at=None).where(Handoff.id.in_(batch)).execute()  # done with
        return statements
    assert remind(5, START) == remind(50, START + timedelta(hours=3))
