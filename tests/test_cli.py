"""The leadbridge command: real subprocesses, one clear error line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env["LEADBRIDGE_DATA_DIR"] = str(tmp_path / "var")

    def run(*args, stdin="", extra_env=None):
        return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT,
                              input=stdin, capture_output=True, text=True, timeout=60,
                              env={**env, **(extra_env or {})})

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
    from service.migrations import MIGRATIONS

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
])
def test_bad_input_is_one_error_line(cli, args, stdin, env, message):
    result = cli(*args, stdin=stdin, extra_env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_demo_loads_data(cli):
    result = cli("demo", "--days", "30")
    assert result.returncode == 0 and "demo data loaded:" in result.stdout
    leads = int(result.stdout.split("loaded: ")[1].split()[0])
    assert leads > 100
    again = cli("demo", "--days", "30")
    assert again.returncode == 0 and "already has leads" in again.stdout


def test_integration_key_and_rescore(cli):
    cli("init-db")
    made = cli("create-integration-key", "webhook", "website")
    assert made.returncode == 0 and made.stdout.startswith("whsec_")
    wrong = cli("create-integration-key", "write_key", "nowhere")
    assert wrong.returncode == 1 and "unknown write_key source 'nowhere'" in wrong.stderr
    assert cli("rescore").stdout.strip() == "rescored 0 leads"
