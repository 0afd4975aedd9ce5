"""Webhook fan-out: 10,000 state changes (leads captured through the lifecycle, each writing
a lead.created event) to 3 endpoints, i.e. 30,000 deliveries, sent by the real job code
(workers.jobs.deliver_webhooks over the same batches of 50 the emission queues: claim,
re-read, sign per Standard Webhooks, POST over a keep-alive pool per endpoint, record each
outcome). Beside a baseline measured in the same run: a bare `requests.Session` loop (one
keep-alive session per receiver) POSTing the same bodies to the same receivers. The
receivers are small HTTP/1.1 servers, one process each, answering 204.

Usage: python benchmarks/webhook_fanout.py [--changes 10000]"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import bench_app, free_port, machine, wait_for

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Handler.count += 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        body = str(Handler.count).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
ENDPOINTS = 3
BATCH = 50  # deliveries per job, as service.events queues them


def start_receivers() -> tuple[list[subprocess.Popen], list[str]]:
    processes, urls = [], []
    for _ in range(ENDPOINTS):
        port = free_port()
        processes.append(subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)]))
        urls.append(f"http://127.0.0.1:{port}/hook")
        wait_for(urls[-1])
    return processes, urls


def received(urls: list[str]) -> int:
    return sum(int(urllib.request.urlopen(url, timeout=5).read()) for url in urls)


def changes(count: int) -> list[int]:
    """`count` leads captured (each one lead.created event, fanned out to every endpoint)
    in batches as an import would; the delivery ids."""
    from service import lifecycle
    from service.core.db import transaction, utcnow
    from service.core.models import WebhookDelivery

    for start in range(0, count, 1000):
        with transaction():
            lifecycle.capture_many([{"email": f"lead{i}@example.com", "first_name": f"Pat{i}",
                                     "company": "Acme"} for i in range(start, start + 1000)],
                                   source="bench", actor="bench", now=utcnow())
    return [row.id for row in WebhookDelivery.select(WebhookDelivery.id)
            .order_by(WebhookDelivery.id)]


def bodies(urls: list[str]) -> list[tuple[str, bytes]]:
    """What the deliveries will send: (receiver url, signed event body), in the same order."""
    from service import events
    from service.core.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

    url_of = {endpoint.id: endpoint.url for endpoint in WebhookEndpoint.select()}
    query = (WebhookDelivery.select(WebhookDelivery, WebhookEvent).join(WebhookEvent)
             .order_by(WebhookDelivery.id))
    return [(url_of[row.endpoint_id], json.dumps(events.envelope(row.event),
                                                 separators=(",", ":")).encode())
            for row in query]


def baseline(sends: list[tuple[str, bytes]]) -> float:
    import requests

    sessions = {url: requests.Session() for url, _ in sends}
    started = time.perf_counter()
    for url, body in sends:
        answer = sessions[url].post(url, data=body, timeout=15,
                                    headers={"Content-Type": "application/json"})
        assert answer.status_code == 204
    return time.perf_counter() - started


def ours(delivery_ids: list[int]) -> float:
    from workers import jobs

    started = time.perf_counter()
    for i in range(0, len(delivery_ids), BATCH):
        jobs.deliver_webhooks(delivery_ids[i:i + BATCH])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=10_000)
    args = parser.parse_args()
    print(machine())
    processes, urls = start_receivers()
    try:
        with tempfile.TemporaryDirectory() as folder:
            bench_app(folder, **{"outbound.allow_private_urls": True})
            from service.core.db import utcnow
            from service.core.models import WebhookDelivery
            from service.core.runtime import runtime
            from service.webhooks import endpoints

            for url in urls:
                endpoints.create({"url": url}, actor="bench", settings=runtime.settings,
                                 now=utcnow())
            started = time.perf_counter()
            delivery_ids = changes(args.changes)
            written = time.perf_counter() - started
            sends = bodies(urls)
            bare = baseline(sends)
            before = received(urls)
            took = ours(delivery_ids)
            arrived = received(urls) - before
            delivered = WebhookDelivery.select().where(
                WebhookDelivery.status == "delivered").count()
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
    count = len(delivery_ids)
    assert arrived == delivered == count, (arrived, delivered, count)
    print(f"{args.changes} state changes → {count} deliveries to {ENDPOINTS} endpoints "
          f"(events and deliveries written in {written:.1f} s)")
    print(f"{'path':44} {'seconds':>8} {'per second':>11}")
    print(f"{'requests.Session loop (baseline)':44} {bare:8.2f} {count / bare:11.0f}")
    print(f"{'deliver_webhooks jobs (claim, sign, record)':44} {took:8.2f} {count / took:11.0f}")
    ratio = bare / took
    print(f"ratio: {ratio:.2f} of the baseline; target >= 0.5: "
          f"{'met' if ratio >= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
