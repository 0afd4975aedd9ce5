"""The nurture sweep with 1,000,000 active enrollments of which 10,000 are due (their leads
in five time zones): the time of one sweep, beside two floors measured in the same run on
the same rows: the due rows' SELECT alone, and plain sqlite3 doing the same claims, outbox
inserts and commits per 1,000 rows on a copy of the database (executemany, no domain logic);
and the figure before the sweep was set-based. Then the sends per second of those emails to a
local SMTP server through the outbox (batches of 50 over one connection, as the send jobs
do), beside a baseline measured in the same run: smtplib sending the same number of small
pre-built messages over one connection to the same server.

Usage: python benchmarks/nurture_sweep.py [--enrollments 1000000] [--due 10000]"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import bench_app, free_port, machine, query_plan, small_messages

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday, inside send hours
BEFORE = "~16 s for 10,000 due among 1,000,000 (~610 steps/s: per-row claim, check, insert)"
DUE_SQL = ("SELECT e.id, e.step, l.id, l.email, l.first_name FROM enrollment e JOIN lead l"
           " ON l.id = e.lead_id WHERE e.status = 'active' AND e.next_due_at <= ?"
           " ORDER BY e.next_due_at")
ZONES = ("", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def fill(path: Path, enrollments: int, due: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("BEGIN")
    created = stamp(NOW - timedelta(days=20))
    leads, rows = [], []
    for i in range(1, enrollments + 1):
        leads.append((i, f"prospect{i}@example{i % 1000}.com", f"Pat{i}", ZONES[i % len(ZONES)],
                      created, created, created))
        next_at = NOW - timedelta(minutes=i % 60) if i <= due else NOW + timedelta(
            hours=1 + i % 5000)
        rows.append((i, "default", created, created, stamp(next_at)))
        if len(leads) == 50_000:
            _insert(db, leads, rows)
            leads, rows = [], []
    _insert(db, leads, rows)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def _insert(db, leads, rows) -> None:
    db.executemany(
        "INSERT INTO lead (id, email, first_name, last_name, company, title, phone, country,"
        " company_size, industry, source, utm_source, utm_campaign, time_zone, stage,"
        " stage_changed_at, created_at, updated_at, event_sequence) VALUES (?, ?, ?, '', '', '',"
        " '', '', '', '', 'bench', '', '', ?, 'nurture', ?, ?, ?, 0)", leads)
    db.executemany(
        "INSERT INTO enrollment (lead_id, sequence, step, last_step_id, status, stop_reason,"
        " started_at, updated_at, next_due_at) VALUES (?, ?, 0, '', 'active', '', ?, ?, ?)", rows)


def floors(path: Path) -> tuple[float, float]:
    """Seconds for the due rows' SELECT alone, and for plain sqlite3 doing the sweep's work
    on a copy of the database: per 1,000 due rows, select them, claim each (a conditional
    UPDATE), write its outbox row and commit."""
    db = sqlite3.connect(path, isolation_level=None)
    started = time.perf_counter()
    db.execute(DUE_SQL, (stamp(NOW),)).fetchall()
    select_s = time.perf_counter() - started
    copy = sqlite3.connect(path.with_name("floor.db"), isolation_level=None)
    db.backup(copy)
    db.close()
    later, now = stamp(NOW + timedelta(days=7)), stamp(NOW)
    context = json.dumps({"subject": "A guide", "sequence_version": 1, "template_version": 1})
    started = time.perf_counter()
    while rows := copy.execute(DUE_SQL + " LIMIT 1000", (now,)).fetchall():
        copy.execute("BEGIN IMMEDIATE")
        copy.executemany("UPDATE enrollment SET step = ?, last_step_id = ?, next_due_at = ?,"
                         " updated_at = ? WHERE id = ? AND step = ? AND status = 'active'",
                         [(step + 1, "s1", later, now, id_, step) for id_, step, *_ in rows])
        copy.executemany(
            "INSERT INTO outbox_email (template, to_address, to_name, context, message_id,"
            " lead_id, created_at, attempts, last_error, subject, body_text, body_html,"
            " to_prospect, enrollment, step, step_id, skip_reason) VALUES (?, ?, ?, ?, ?, ?, ?,"
            " 0, '', '', '', '', 1, ?, ?, ?, '')",
            [("nurture/checkin", email, name, context, f"<{os.urandom(16).hex()}@example.com>",
              lead, now, id_, step, "s1") for id_, step, lead, email, name in rows])
        copy.execute("COMMIT")
    total_s = time.perf_counter() - started
    copy.close()
    return select_s, total_s


def baseline(port: int, count: int) -> float:
    messages = small_messages(count)
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for message in messages:
            smtp.send_message(message)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    args = parser.parse_args()
    print(machine())
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Sink"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        with tempfile.TemporaryDirectory() as folder:
            app = bench_app(folder, **{"mail.transport": "smtp", "mail.smtp_host": "127.0.0.1",
                                       "mail.smtp_port": port, "mail.smtp_security": "none"})
            from service.core import db
            from service.core.models import Enrollment, OutboxEmail
            from service.core.runtime import runtime
            from service.mail import delivery
            from service.nurture import sequences as nurture

            settings = runtime.settings
            started = time.perf_counter()
            fill(Path(folder) / "leadbridge.db", args.enrollments, args.due)
            print(f"data: {args.enrollments:,} active enrollments ({args.due:,} due) written in "
                  f"{time.perf_counter() - started:.1f}s")
            query = Enrollment.select(Enrollment.id).where(Enrollment.status == "active",
                                                           Enrollment.next_due_at <= NOW)
            print("query plan:", query_plan(query))
            select_s, floor_s = floors(Path(folder) / "leadbridge.db")
            started = time.perf_counter()
            queued = nurture.sweep(settings=settings, now=NOW)
            sweep_s = time.perf_counter() - started
            ids = [row.id for row in OutboxEmail.select(OutboxEmail.id).order_by(OutboxEmail.id)]
            started = time.perf_counter()
            sent = sum(delivery.deliver(ids[i:i + 50], settings=settings, secret=app.secret_key,
                                      now=NOW) for i in range(0, len(ids), 50))
            send_rate = sent / (time.perf_counter() - started)
            db.db.close()
        base_rate = baseline(port, min(sent, 5000))
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    print(f"one sweep: {sweep_s:.2f}s for {queued:,} due steps "
          f"({queued / sweep_s:,.0f} steps/s queued to the outbox); before: {BEFORE}")
    print(f"floor: the due rows' SELECT alone {select_s:.2f}s; plain sqlite3 selecting, claiming,"
          f" inserting and committing them per 1,000 {floor_s:.2f}s → the sweep takes"
          f" {sweep_s / floor_s:.1f}x that")
    print(f"sending: {sent:,} emails at {send_rate:,.0f}/s (render, suppression check, "
          "SMTP in batches of 50)")
    print(f"baseline: smtplib alone, pre-built messages, one connection: {base_rate:,.0f}/s "
          f"→ ratio {send_rate / base_rate:.2f}")


if __name__ == "__main__":
    main()
