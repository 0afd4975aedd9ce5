"""The panel at scale: 1,000,000 leads and 10,000,000 activities in SQLite (with a year of
promotions and decisions). Median render time of the leads list, a lead's page and the home
page (what needs a decision today, for a marketer and for an admin, and the dashboard read
from the rollups, again right after a decision left two days to recount), beside a baseline
measured in the same run (GET /healthz through the same app), and the query plans of the
queries that matter.

Usage: python benchmarks/panel.py [--leads 1000000] [--activities 10000000] [--runs 15]"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import bench_app, machine, query_plan
from peewee import fn

NOW = datetime.now(UTC).replace(microsecond=0)
TYPES = ["page_view", "pricing_page_view", "content_download", "webinar_attended",
         "email_click", "contact_sales"]
STAGES = ["lead"] * 80 + ["nurture"] * 8 + ["sql"] * 5 + ["disqualified"] * 3 + \
    ["customer"] * 2 + ["mql"] * 2


# scores of 2^-5 to 2^6 points now: with the default threshold (50), about 3 % suggested
NOW_LOG = (NOW - datetime(2025, 1, 1, tzinfo=UTC)).total_seconds() / 86400 / 30


def stamp(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(sep=" ")


def fill(path: Path, leads: int, activities: int) -> None:
    rng = random.Random(1)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    db.executemany("INSERT INTO rep (id, email, name, time_zone, weight, capacity, active,"
                   " out_of_office, manager_email, link_version)"
                   " VALUES (?, ?, ?, 'UTC', 1, 0, 1, 0, '', 0)",
                   [(i, f"rep{i}@example.com", f"Rep {i}") for i in range(1, 21)])
    lead_rows, changes, handoffs = [], [], []
    for i in range(1, leads + 1):
        created = NOW - timedelta(seconds=rng.randint(0, 365 * 86400))
        stage = rng.choice(STAGES)
        lead_rows.append((i, f"lead{i}@company{i % 5000}.example.com", f"First{i % 997}",
                          f"Last{i % 991}", f"Company {i % 5000}", rng.choice(["GB", "US", "DE"]),
                          rng.choice(["form:contact", "webhook:website", "import"]), stage,
                          stamp(created), stamp(created), stamp(created), stamp(created),
                          rng.uniform(-5, 6) + NOW_LOG))
        changes.append((i, None, "lead", stamp(created), created.date().isoformat()))
        if stage != "lead":
            promoted = created + timedelta(hours=rng.randint(2, 300))
            if promoted < NOW:
                status = {"mql": "pending", "nurture": "rejected", "disqualified": "rejected"}.get(
                    stage, "accepted")
                decided = promoted + timedelta(minutes=rng.randint(10, 3000))
                handoffs.append((i, 1 + i % 20, "mia@example.com", stamp(promoted),
                                 promoted.date().isoformat(), stamp(promoted + timedelta(hours=8)),
                                 status, None if status == "pending" else stamp(decided),
                                 None if status == "pending" else decided.date().isoformat(),
                                 None if status == "pending" else int(
                                     (decided - promoted).total_seconds() // 60),
                                 None if status == "pending" else decided <= promoted + timedelta(
                                     hours=8), "not_ready" if status == "rejected" else "",
                                 lead_rows[-1][6], int((promoted - created).total_seconds() // 60)))
                changes.append((i, "lead", "mql", stamp(promoted), promoted.date().isoformat()))
                if status != "pending":
                    changes.append((i, "mql", "sql" if status == "accepted" else stage,
                                    stamp(decided), decided.date().isoformat()))
        if len(lead_rows) == 100_000:
            _flush(db, lead_rows, changes, handoffs)
            lead_rows, changes, handoffs = [], [], []
    _flush(db, lead_rows, changes, handoffs)
    types = ", ".join(f"'{t}'" for t in TYPES)
    db.execute(  # generated inside SQLite: ten million rows in Python would take minutes
        "INSERT INTO activity (lead_id, type, occurred_at, source, properties, created_at)"
        " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        f" SELECT abs(random()) % ? + 1, json_extract(json_array({types}),"
        f" '$[' || (abs(random()) % {len(TYPES)}) || ']'),"
        " datetime(?, '-' || (abs(random()) % 31536000) || ' seconds'), 'tracking:website',"
        " '{}', ? FROM n", (activities, leads, stamp(NOW), stamp(NOW)))
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def _flush(db, leads, changes, handoffs) -> None:
    db.executemany(
        "INSERT INTO lead (id, email, first_name, last_name, company, title, phone, country,"
        " company_size, industry, source, utm_source, utm_campaign, time_zone, stage,"
        " stage_changed_at, created_at, updated_at, last_activity_at, score_log, event_sequence)"
        " VALUES (?, ?, ?, ?, ?, '', '', ?, '', '', ?, '', '', '', ?, ?, ?, ?, ?, ?, 0)", leads)
    db.executemany("INSERT INTO stage_change (lead_id, from_stage, to_stage, at, day, actor,"
                   " reason) VALUES (?, ?, ?, ?, ?, 'bench', '')", changes)
    db.executemany(
        "INSERT INTO handoff (lead_id, rep_id, promoted_by, promoted_at, promoted_day, due_at,"
        " status, decided_at, decided_day, decision_minutes, sla_met, reason, lead_source,"
        " lead_age_minutes, origin, note, decided_by, budget, authority, need, timeline, notes,"
        " outcome, lead_utm_source, lead_utm_campaign) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?, ?, 'inbound', '', '', '', '', '', '', '', '', '', '')", handoffs)


def mark_decision(db, rollups) -> None:
    """What one decision leaves behind: its day and its cohort's day to recount."""
    with db.transaction():
        rollups.mark_dirty(NOW.date(), (NOW - timedelta(days=2)).date())


def log_in(app, email: str):
    client = app.test_client()
    page = client.get("/admin/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post("/admin/login", data={"email": email, "password": "benchmark-password",
                                      "csrf_token": token})
    return client


def median_ms(client, path: str, runs: int, before=None) -> float:
    times = []
    for _ in range(runs):
        if before:
            before()
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        app = bench_app(folder)
        from service.accounts.users import create_user
        from service.core import db
        from service.core.models import Activity, Handoff, Lead, Rollup
        from service.reports import figures as reports
        from service.reports import rollups

        started = time.perf_counter()
        fill(Path(folder) / "leadbridge.db", args.leads, args.activities)
        print(f"data: {args.leads:,} leads, {args.activities:,} activities written in "
              f"{time.perf_counter() - started:.0f}s")
        db.db.close()
        db.connect()
        started = time.perf_counter()
        with db.transaction():
            rollups.mark_all_dirty()
        days = rollups.refresh(NOW)
        print(f"rollups: {days} days recounted in {time.perf_counter() - started:.1f}s "
              f"({Rollup.select().count():,} rows)")
        create_user("bench@example.com", role="admin", password="benchmark-password", now=NOW)
        create_user("mia@example.com", role="marketer", password="benchmark-password", now=NOW)
        client, marketer = log_in(app, "bench@example.com"), log_in(app, "mia@example.com")
        busy = Activity.select(Activity.lead).group_by(Activity.lead).limit(1).scalar()
        figures = {
            "baseline GET /healthz": median_ms(client, "/healthz", args.runs),
            "leads list": median_ms(client, "/admin/lead/", args.runs),
            "leads list, sorted by score": median_ms(client, "/admin/lead/?sort=6&desc=1",
                                                     args.runs),
            "leads list, by owner": median_ms(client, "/admin/lead/?flt0_owner_rep_equals=1",
                                              args.runs),
            "leads list, by owner, overdue": median_ms(
                client, "/admin/lead/?flt0_owner_rep_equals=1&flt1_handoff_due_equals=overdue",
                args.runs),
            "lead page": median_ms(client, f"/admin/lead/details/?id={busy}", args.runs),
            "home, admin (6 months by month)": median_ms(client, "/admin/", args.runs),
            "home, marketer": median_ms(marketer, "/admin/", args.runs),
            "home (a year by week)": median_ms(
                client, f"/admin/?period=week&start={(NOW - timedelta(days=364)).date()}",
                args.runs),
        }
        figures["home after a decision"] = median_ms(
            client, "/admin/", args.runs, before=lambda: mark_decision(db, rollups))
        span = reports.Range(reports.months_before(NOW.date(), 5), NOW.date(), "month")
        plans = {
            "rollup totals": Rollup.select(Rollup.key, fn.SUM(Rollup.count)).where(
                Rollup.figure == "decision", Rollup.span == "month",
                Rollup.day.between(span.start, span.end)).group_by(Rollup.key),
            "leads page": Lead.select().order_by(Lead.created_at.desc()).limit(50),
            "home, overdue handoffs": Handoff.select().where(
                Handoff.status == "pending", Handoff.due_at < NOW,
                Handoff.promoted_by == "mia@example.com").order_by(Handoff.due_at).limit(5),
            "home, suggested MQLs": Lead.select().where(
                Lead.stage.in_(("lead", "nurture")), Lead.score_log >= NOW_LOG + 5.6).order_by(
                Lead.score_log.desc()).limit(5),
            "lead timeline": Activity.select().where(Activity.lead == busy).order_by(
                Activity.occurred_at.desc()).limit(200),
        }
        for name, query in plans.items():
            print(f"plan, {name}: {query_plan(query)}")
        db.db.close()
    base = figures["baseline GET /healthz"]
    print(f"{'page':32} {'median ms':>10} {'× baseline':>11}")
    for name, value in figures.items():
        print(f"{name:32} {value:10.1f} {value / base:11.0f}")


if __name__ == "__main__":
    main()
