"""Demo data: it never mails anyone, whatever the transport; its addresses are valid and
under the reserved .example domain; its marketers and managers can log in."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import time_machine

from service.core.addresses import normalise_email
from service.core.models import Lead, OutboxEmail, Rep, Team, User
from service.core.runtime import runtime
from service.ops.demo import load_demo
from service.ops.up import prepare_database
from tests.conftest import ROOT, leadbridge_env, log_in, run_worker

MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def sweep(*jobs: str) -> None:
    for job in jobs:
        runtime.queue.enqueue(f"workers.jobs.{job}")
    run_worker()


def test_demo_beside_a_running_stack_mails_nobody(app, smtp):
    with time_machine.travel(MONDAY, tick=False) as clock:
        with app.app_context():
            load_demo(runtime.settings, days=30)
        waiting = OutboxEmail.select().where(OutboxEmail.skipped_at.is_null()).count()
        assert (waiting, runtime.queue.count) == (0, 0), "skipped when written, never queued"
        run_worker()
        clock.move_to(MONDAY + timedelta(days=2, hours=2))
        sweep("sweep_sla", "sweep_nurture", "sweep_outbox")
        clock.move_to(MONDAY + timedelta(days=9))
        sweep("sweep_sla", "sweep_nurture", "sweep_outbox")
    assert smtp.messages == []
    rows = list(OutboxEmail.select())
    templates = {row.template.partition("/")[0] for row in rows}
    assert {"rep_handoff", "decision_feedback", "sla_reminder", "sla_escalation",
            "nurture"} <= templates
    assert {(row.sent_at, row.skip_reason) for row in rows} == {
        (None, "demo address (.example)")}


def test_demo_addresses_are_valid_and_reserved(app):
    with time_machine.travel(MONDAY, tick=False), app.app_context():
        load_demo(runtime.settings, days=30)
    addresses = ([lead.email for lead in Lead.select()] + [rep.email for rep in Rep.select()]
                 + [team.manager_email for team in Team.select()]
                 + [user.email for user in User.select()])
    assert len(addresses) > 200
    assert any("vanrossum" in address or "van-rossum" in address for address in addresses)
    for address in addresses:
        assert normalise_email(address) == address
        assert address.endswith(".example"), address


def test_demo_prints_logins_that_work(app, settings_overrides):
    result = subprocess.run(
        [sys.executable, "-m", "service.ops.cli", "demo", "--days", "3"], cwd=ROOT,
        env=leadbridge_env(app, settings_overrides), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    logins = re.findall(r"^\s+(\S+@\S+\.example) / (\S+) +\((marketer|sales_manager)\)$",
                        result.stdout, re.MULTILINE)
    assert {role for _, _, role in logins} == {"marketer", "sales_manager"}, result.stdout
    for email, password, role in logins:
        client = app.test_client()
        response = log_in(client, email, password)
        assert response.status_code == 302, (email, response.text)
        assert client.get("/admin/").status_code == 200
        assert User.get(User.email == email).role == role


def test_up_after_the_demo_still_makes_the_first_admin(app):
    with app.app_context():
        load_demo(runtime.settings, days=1)
    login = prepare_database(runtime.settings)
    assert login.startswith("admin@example.com / ")
    assert User.get(User.email == "admin@example.com").role == "admin"
