"""`leadbridge up`: one command that runs every part for a first run or a small team."""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from service import init_backends
from service.accounts.users import create_user
from service.core import config as config_module
from service.core.db import utcnow
from service.core.errors import DomainError
from service.core.models import User
from service.core.settings import Settings
from service.ops.demo import load_demo
from service.ops.embedded_valkey import EmbeddedValkey
from service.ops.migrations import migrate

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
ADMIN_EMAIL = "admin@example.com"
PARTS = ("web", "worker", "cron")  # and "mailbox" when inbound.imap_url names one
PR_SET_PDEATHSIG = 1  # Linux prctl: the signal a process gets when its parent dies
LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def run(config_path: str | None, port: int | None, demo: bool = False) -> int:
    os.umask(0o077)  # whatever this and its children write is theirs alone
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
        print("Loading demo data…", flush=True)
        try:
            print(load_demo(settings), flush=True)
        except DomainError as exc:
            print(f"Demo data not loaded: {exc.message}", flush=True)
    valkey = None
    if not settings.redis.url:
        valkey = start_valkey(config_module.data_dir(settings))
        env["LEADBRIDGE_REDIS__URL"] = valkey.connection_url
    stopping = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stopping.append(True))
    children = [Child(part, starter(part, env)) for part in parts(settings)]
    store = None
    if valkey is not None:
        store = Child("valkey", lambda: restart_valkey(valkey, env, children),
                      valkey.process, time.monotonic(), own_group=False)
    print(banner(settings, login, valkey), flush=True)
    code = supervise(children, stopping, store)
    if valkey is not None:
        valkey.stop()
    return code


def parts(settings: Settings) -> tuple[str, ...]:
    """The commands `up` runs: the mailbox reader only when there is a mailbox to read."""
    return (*PARTS, "mailbox") if settings.inbound.imap_url else PARTS


def starter(part: str, env: dict) -> Callable[[], subprocess.Popen]:
    """Each part in a process group of its own: what it started (gunicorn's workers, RQ's
    scheduler) goes with it when it crashes; Ctrl-C reaches it through `up`; and on Linux
    it gets SIGTERM when `up` dies, even by SIGKILL (what it started then stops with it)."""
    return lambda: subprocess.Popen([sys.executable, "-m", "service.ops.cli", part], env=env,
                                    process_group=0, preexec_fn=dies_with(os.getpid()))


def dies_with(parent: int) -> Callable[[], None] | None:
    """Run in the forked part before it starts: SIGTERM when `parent` dies, or now if it
    died already (between the fork and this)."""
    if LIBC is None:
        return None

    def arrange() -> None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


def end_group(process: subprocess.Popen) -> None:
    """Kill whatever is left of a child's process group (it has exited, or would not)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def prepare_database(settings: Settings) -> str:
    """Migrate, and create a first admin when there is none (the demo's marketers and
    managers are no admins); return how to log in."""
    init_backends(settings, config_module.secret_key(settings))
    migrate()
    note = config_module.data_dir(settings) / "first-admin.txt"
    if not User.select().where(User.role == "admin").exists():
        password = secrets.token_urlsafe(12)
        create_user(ADMIN_EMAIL, role="admin", password=password, now=utcnow())
        config_module.write_private(note, f"{ADMIN_EMAIL}\n{password}\n".encode())
        return f"{ADMIN_EMAIL} / {password}  (first run: saved in {note})"
    if note.exists():
        return f"{ADMIN_EMAIL}, password in {note}"
    return "a user made with `leadbridge create-user`"


def start_valkey(data_dir: Path) -> EmbeddedValkey:
    """The embedded Valkey, on loopback behind a password made once into the data folder
    (any local process could otherwise put jobs in the queue)."""
    file = data_dir / "valkey_password"
    if not file.exists():
        config_module.write_private(file, secrets.token_urlsafe(32).encode())
    server = EmbeddedValkey(data_dir / "valkey", file.read_text().strip())
    stop_left_over(server.data_dir)
    server.start()
    return server


def stop_left_over(folder: Path, seconds: float = 10) -> None:
    """Stop a Valkey still running from this folder (its `up` was killed; Linux): it
    would otherwise run on, unused, beside the new one."""
    pid_file = folder / "valkey.pid"

    def running(pid: int) -> bool:  # a valkey-server in this folder (its pid not reused)
        with suppress(OSError):
            return (os.readlink(f"/proc/{pid}/cwd") == str(folder)
                    and "valkey-server" in os.readlink(f"/proc/{pid}/exe"))
        return False

    with suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        if running(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + seconds
            while running(pid) and time.monotonic() < deadline:
                time.sleep(0.1)


def restart_valkey(valkey: EmbeddedValkey, env: dict, children: list[Child]) -> subprocess.Popen:
    """Start the embedded Valkey again, on its port so the parts' URL still holds; on
    another port if that one was taken meanwhile, and then the parts restart with it."""
    try:
        valkey.start(valkey.port)
    except OSError:
        valkey.start()
    if env["LEADBRIDGE_REDIS__URL"] != valkey.connection_url:
        env["LEADBRIDGE_REDIS__URL"] = valkey.connection_url
        for child in children:
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
    return valkey.process


def banner(settings: Settings, login: str, valkey: EmbeddedValkey | None) -> str:
    url = config_module.base_url(settings)
    if valkey:
        redis = f"embedded Valkey at {valkey.shown_url}"
    else:
        given = urlsplit(settings.redis.url)
        redis = given._replace(netloc=given.netloc.rpartition("@")[2]).geturl()
    mail = ("captured: read it in the panel under Email outbox"
            if settings.mail.transport == "capture" else
            f"SMTP via {settings.mail.smtp_host}:{settings.mail.smtp_port}")
    replies = (f"  IMAP:   replies read from {settings.inbound.imap_url}\n"
               if settings.inbound.imap_url else "")
    return (f"\nLeadbridge is up.\n  Panel:  {url}/admin\n  Login:  {login}\n"
            f"  Redis:  {redis}\n  Mail:   {mail}\n{replies}Press Ctrl-C to stop.\n")


FIRST_DELAY, LONGEST_DELAY = 1.0, 60.0  # seconds before restarting a child, doubling
HEALTHY_SECONDS = 60.0  # a child that ran this long restarts after FIRST_DELAY again


@dataclass
class Child:
    """One part run by `up`: its process, and when to start it again after it exited."""

    part: str
    start: Callable[[], subprocess.Popen]
    process: subprocess.Popen | None = None
    started: float = 0.0
    delay: float = FIRST_DELAY
    due: float = 0.0
    own_group: bool = True

    def tend(self, now: float) -> None:
        """Start the child when it is due; note its exit and plan its restart."""
        if self.process is None:
            if now >= self.due:
                self.begin(now)
            return
        code = self.process.poll()
        if code is None:
            return
        if self.own_group:
            end_group(self.process)
        self.plan_restart(now, exit_reason(code))

    def begin(self, now: float) -> None:
        try:
            self.process, self.started = self.start(), now
        except OSError as exc:
            self.plan_restart(now, f"did not start ({exc})")

    def plan_restart(self, now: float, reason: str) -> None:
        ran = now - self.started
        if ran >= HEALTHY_SECONDS:
            self.delay = FIRST_DELAY
        print(f"leadbridge: {self.part} {reason} after {ran:.0f}s; restarting it "
              f"in {self.delay:.0f}s", file=sys.stderr, flush=True)
        self.process, self.due = None, now + self.delay
        self.delay = min(self.delay * 2, LONGEST_DELAY)


def exit_reason(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name} (exit code {code})"
    except ValueError:
        return f"was killed by signal {-code} (exit code {code})"


def supervise(children: list[Child], stopping: list, store: Child | None = None) -> int:
    """Keep every child and the embedded Valkey (`store`) running (a crashed one comes back,
    with backoff) until a stop signal, then stop the children (the caller stops Valkey)."""
    while not stopping:
        for child in [store, *children] if store else children:
            child.tend(time.monotonic())
        time.sleep(0.2)
    running = [child.process for child in children if child.process is not None]
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 8
    for process in running:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        end_group(process)
        process.wait()
    return 0
