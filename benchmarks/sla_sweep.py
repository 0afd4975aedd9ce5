"""One SLA sweep over 1,000,000 handoffs of which 1,000 are due, on SQLite: the time of the
sweep, the query plan of its lookup, and a baseline measured in the same run — the same
lookup forced to scan the table (NOT INDEXED).

Usage: python benchmarks/sla_sweep.py [--handoffs 1000000] [--due 1000]"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import bench_app, machine, query_plan

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def fill(path: Path, handoffs: int, due: int) -> None:
    """Leads and reps, then handoffs: most decided, some pending later, `due` pending now."""
    pending_later = handoffs // 10
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("BEGIN")
    db.executemany("INSERT INTO rep (id, email, name, time_zone, weight, capacity, active,"
                   " out_of_office, manager_email, link_version)"
                   " VALUES (?, ?, '', 'UTC', 1, 0, 1, 0, ?, 0)",
                   [(i, f"rep{i}@example.com", "boss@example.com") for i in range(1, 51)])
    leads = due + pending_later + 1
    created = stamp(NOW - timedelta(days=30))
    db.executemany(
        "INSERT INTO lead (id, email, first_name, last_name, company, title, phone, country,"
        " company_size, industry, source, utm_source, utm_campaign, time_zone, stage,"
        " stage_changed_at, created_at, updated_at, event_sequence) VALUES (?, ?, '', '', '', '',"
        " '', '', '', '', 'bench', '', '', '', ?, ?, ?, ?, 0)",
        [(i, f"lead{i}@example.com", "mql", created, created, created)
         for i in range(1, leads + 1)])
    rows = []
    for i in range(handoffs):
        if i < due:
            lead, status, next_at = i + 1, "pending", NOW - timedelta(minutes=1 + i % 50)
        elif i < due + pending_later:
            lead, status, next_at = i + 1, "pending", NOW + timedelta(hours=1 + i % 200)
        else:
            lead, status, next_at = leads, "accepted", None
        promoted = next_at - timedelta(hours=4) if next_at else NOW - timedelta(days=20)
        rows.append((lead, 1 + i % 50, "mia@example.com", stamp(promoted),
                     stamp(promoted + timedelta(hours=8)), status, "inbound",
                     stamp(next_at) if next_at else None, stamp(next_at) if next_at else None))
        if len(rows) == 50_000:
            _insert(db, rows)
            rows = []
    _insert(db, rows)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def _insert(db, rows) -> None:
    db.executemany(
        "INSERT INTO handoff (lead_id, rep_id, promoted_by, promoted_at, due_at, status, origin,"
        " remind_due_at, sla_next_at, note, decided_by, budget, authority, need, timeline,"
        " reason, notes, outcome, lead_source, lead_utm_source, lead_utm_campaign) VALUES (?, ?, ?,"
        " ?, ?, ?, ?, ?, ?, '', '', '', '', '', '', '', '', '', 'bench', '', '')", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handoffs", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=1_000)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        bench_app(folder, **{"sla.calendar": "24x7", "sla.reassign_at": 0.0})
        from service.core import db
        from service.core.models import Handoff
        from service.core.runtime import runtime
        from service.handoffs.escalation import due, sweep

        started = time.perf_counter()
        fill(Path(folder) / "leadbridge.db", args.handoffs, args.due)
        print(f"data: {args.handoffs:,} handoffs ({args.due:,} due, {args.handoffs // 10:,} "
              f"pending later) written in {time.perf_counter() - started:.1f}s")
        query = (Handoff.select(Handoff.id).where(Handoff.status == "pending",
                                                  Handoff.sla_next_at <= NOW))
        print("query plan:", query_plan(query))
        sql, params = query.sql()
        started = time.perf_counter()
        found = len(due(NOW, 100_000))
        lookup = time.perf_counter() - started
        scan_sql = sql.replace('FROM "handoff" AS "t1"', 'FROM "handoff" AS "t1" NOT INDEXED')
        started = time.perf_counter()
        scanned = len(db.db.execute_sql(scan_sql, params).fetchall())
        baseline = time.perf_counter() - started
        started = time.perf_counter()
        done = sweep(settings=runtime.settings, now=NOW)
        elapsed = time.perf_counter() - started
        db.db.close()
    print(f"due lookup through the index: {lookup * 1000:.1f} ms for {found} rows")
    print(f"baseline, same lookup scanning the table: {baseline * 1000:.1f} ms for {scanned} rows"
          f" ({baseline / lookup:.0f}x slower)")
    print(f"one sweep: {elapsed * 1000:.0f} ms — {dict(done)} "
          f"({elapsed / args.due * 1e6:.0f} µs per due handoff, outbox rows included)")


if __name__ == "__main__":
    main()
