"""The leadbridge command: real subprocesses, one clear error line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from service.core.db import utcnow
from service.core.models import Handoff, OutboxEmail
from tests.conftest import ROOT, run_cli, run_worker
from tests.factories import enrolled, promoted


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env["LEADBRIDGE_DATA_DIR"] = str(tmp_path / "var")

    def run(*args, stdin="", extra_env=None, cwd=ROOT):
        return subprocess.run([sys.executable, "-m", "service.ops.cli", *args], cwd=cwd,
                              input=stdin, capture_output=True, text=True, timeout=60,
                              env={k: v for k, v in {**env, **(extra_env or {})}.items()
                                   if v is not None})  # None: unset

    return run


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("up", "web", "worker", "cron", "init-db", "create-user", "demo"):
        assert command in result.stdout


def test_init_db_is_repeatable(cli):
    first = cli("init-db")
    assert first.returncode == 0 and "applied 0001 initial schema" in first.stdout
    again = cli("init-db")
    assert again.returncode == 0 and "applied" not in again.stdout
    from service.ops.migrations import MIGRATIONS

    assert f"schema at version {MIGRATIONS[-1][0]}" in again.stdout


def test_create_user_from_stdin(cli):
    cli("init-db")
    made = cli("create-user", "Mia@Example.com", "--role", "marketer", "--password-stdin",
               stdin="a long enough password\n")
    assert made.returncode == 0 and "created marketer mia@example.com" in made.stdout
    duplicate = cli("create-user", "mia@example.com", "--role", "admin", "--password-stdin",
                    stdin="a long enough password\n")
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == "Error: a user with email mia@example.com exists"


@pytest.mark.parametrize("args, stdin, env, message", [
    (["create-user", "x@example.com", "--role", "marketer", "--password-stdin"], "short\n", {},
     "password must have at least 10 characters"),
    (["create-user", "nope", "--role", "marketer", "--password-stdin"], "long enough pw\n", {},
     "email is not valid"),
    (["init-db"], "", {"LEADBRIDGE_WEB__PORT": "http"}, "LEADBRIDGE_WEB__PORT must be int"),
    (["worker", "--burst"], "", {}, "redis.url is empty"),
    (["--config", "missing.toml", "init-db"], "", {}, "config file not found"),
    (["sweep", "--only", "nurtur"], "", {},
     "no sweep named 'nurtur'; the sweeps are outbox, webhooks, sla, nurture, reports, "
     "digest"),
])
def test_bad_input_is_one_error_line(cli, args, stdin, env, message):
    result = cli(*args, stdin=stdin, extra_env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_outside_the_project_folder_names_the_file_it_looked_for(cli, tmp_path):
    result = cli("init-db", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: no config file at {(tmp_path / 'config.toml').resolve()} (run in the folder "
        "with config.toml, or pass --config FILE / set LEADBRIDGE_CONFIG)")
    required = {"LEADBRIDGE_MAIL__FROM_ADDRESS": "leads@example.com",
                "LEADBRIDGE_MAIL__POSTAL_ADDRESS": "1 Road, Town"}
    from_environment = cli("init-db", cwd=tmp_path, extra_env=required)
    assert from_environment.returncode == 0, from_environment.stderr


def test_a_config_files_data_folder_is_beside_it_wherever_the_command_runs(cli, tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    (project / "config.toml").write_text(
        'data_dir = "./var"\n[mail]\nfrom_address = "leads@example.com"\n'
        'postal_address = "1 Road, Town"\n')
    result = cli("--config", str(project / "config.toml"), "init-db", cwd=elsewhere,
                 extra_env={"LEADBRIDGE_DATA_DIR": None})
    assert result.returncode == 0, result.stderr
    assert (project / "var" / "leadbridge.db").exists()
    assert not (elsewhere / "var").exists()


def test_demo_loads_data(cli):
    result = cli("demo", "--days", "30")
    assert result.returncode == 0 and "demo data loaded:" in result.stdout
    leads = int(result.stdout.split("loaded: ")[1].split()[0])
    assert leads > 100
    again = cli("demo", "--days", "30")
    [line] = again.stderr.strip().splitlines()
    assert again.returncode == 1 and line.startswith(
        "Error: demo data goes into an empty database, and this one has leads")


def test_integration_key_and_rescore(cli):
    cli("init-db")
    made = cli("create-integration-key", "webhook", "website")
    assert made.returncode == 0 and made.stdout.startswith("whsec_")
    wrong = cli("create-integration-key", "write_key", "nowhere")
    assert wrong.returncode == 1 and "unknown write_key source 'nowhere'" in wrong.stderr
    assert cli("rescore").stdout.strip() == "rescored 0 leads"


def test_an_api_key_needs_its_owners_email(cli):
    cli("init-db")
    missing = cli("create-api-key", "crm")
    assert missing.returncode != 0 and "--owner" in missing.stderr
    bad = cli("create-api-key", "crm", "--owner", "not an email")
    assert bad.returncode == 1
    [line] = bad.stderr.strip().splitlines()
    assert line.startswith("Error: email is not valid:")
    made = cli("create-api-key", "crm", "--owner", "Mia@Example.com")
    assert made.returncode == 0 and made.stdout.startswith("lbk_")


def due_nurture_step(app, email="ada@example.com"):
    """A lead whose first nurture step fell due a while ago."""
    enrolled(email, at=utcnow() - timedelta(days=30), fields={"first_name": "Ada"})


def test_sweep_runs_every_periodic_sweep(app, settings_overrides, smtp):
    due_nurture_step(app)
    result = run_cli(app, settings_overrides, "sweep")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "outbox: 0 email(s) queued again", "webhooks: 0 webhook delivery(ies) queued",
        "sla: nothing due", "nurture: 1 step(s) queued",
        "reports: 1 day(s) recounted", "digest: not due", "morning: 0 morning email(s) queued",
        "deliveries: 0 delivery id(s) past the dedupe window forgotten"]
    run_worker()
    assert [m["Subject"] for m in smtp.messages] == ["Ada, anything we can help with?"]


def test_sweep_only_one(app, settings_overrides, rep):
    due_nurture_step(app)
    two_days_ago = utcnow() - timedelta(days=2)
    handoff = promoted(rep, "bo@example.com", at=two_days_ago)
    result = run_cli(app, settings_overrides, "sweep", "--only", "nurture")
    assert (result.returncode, result.stdout) == (0, "nurture: 1 step(s) queued\n")
    assert Handoff.get_by_id(handoff.id).reminded_at is None, "the SLA sweep did not run"
    assert [row.template for row in OutboxEmail.select().where(OutboxEmail.to_prospect)] == [
        "nurture/checkin"]
    later = run_cli(app, settings_overrides, "sweep", "--only", "sla")
    assert later.stdout == "sla: 1 escalate, 1 lapse, 1 remind\n"
    assert Handoff.get_by_id(handoff.id).reminded_at is not None
