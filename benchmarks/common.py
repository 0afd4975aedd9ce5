"""Shared by the benchmark scripts: machine facts, free ports, starting servers."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"machine: {platform.node()} · {cpu} · {os.cpu_count()} cores · {memory:.0f} GiB · "
            f"Python {platform.python_version()} · {platform.system()} {platform.release()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def leadbridge(*args, env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.ops.cli", *args], cwd=ROOT, env=env,
                          check=True, capture_output=True, text=True, **kwargs)


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds}s")


def bench_app(folder: str, **overrides):
    """The app on a fresh SQLite database in `folder`, migrated, with no queue or mail noise."""
    sys.path.insert(0, str(ROOT))
    from service import create_app
    from service.core import db
    from service.ops.migrations import migrate

    app = create_app(str(ROOT / "config.toml"), {
        "data_dir": folder, "redis.url": "", "logging.level": "ERROR", **overrides})
    db.connect()
    migrate()
    return app


def query_plan(query) -> str:
    from service.core.db import db

    sql, params = query.sql()
    return "; ".join(row[-1] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))


def small_messages(count: int) -> list:
    """The baseline's emails: small text + HTML messages, built before the clock starts."""
    from email.message import EmailMessage

    messages = []
    for i in range(count):
        message = EmailMessage()
        message["From"], message["To"] = "leadbridge@example.com", f"p{i}@example.com"
        message["Subject"] = "A guide you may find useful"
        message.set_content("Hi there,\n\nA short note.\n")
        message.add_alternative("<p>Hi there,</p><p>A short note.</p>", subtype="html")
        messages.append(message)
    return messages
