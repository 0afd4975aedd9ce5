"""`leadbridge cron`: each sweep queued at start and again after its interval, as a JSON job the
worker runs; SIGTERM stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from rq.job import JobStatus

from service.core.runtime import runtime
from tests.conftest import ROOT, leadbridge_env, run_worker
from workers.runner import SWEEPS, SweepScheduler


class Queue:
    def __init__(self):
        self.queued = []

    def enqueue(self, function, **options):
        self.queued.append((function.__name__, options))


def test_each_sweep_is_queued_at_start_and_again_after_its_seconds():
    queue = Queue()
    scheduler = SweepScheduler(queue)
    assert scheduler.enqueue_due(1000.0) == 5  # the webhooks sweep's period
    assert [name for name, _ in queue.queued] == [sweep.run.__name__ for sweep in SWEEPS]
    assert {str(options) for _, options in queue.queued} == {
        "{'job_timeout': 300, 'result_ttl': 600}"}
    queue.queued.clear()
    assert scheduler.enqueue_due(1030.0) == 5
    assert [name for name, _ in queue.queued] == ["sweep_webhooks"]
    queue.queued.clear()
    assert scheduler.enqueue_due(1060.0) == 5
    assert [name for name, _ in queue.queued] == ["sweep_outbox", "sweep_webhooks", "sweep_sla",
                                                  "sweep_nurture", "refresh_reports",
                                                  "send_morning_emails"]
    queue.queued.clear()
    scheduler.enqueue_due(1300.0)
    assert "send_digest" in [name for name, _ in queue.queued]


def test_leadbridge_cron_queues_jobs_the_worker_runs_and_stops_on_sigterm(app,
                                                                          settings_overrides):
    cron = subprocess.Popen([sys.executable, "-m", "service.ops.cli", "cron"], cwd=ROOT,
                            env=leadbridge_env(app, settings_overrides),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(runtime.queue.job_ids) < len(SWEEPS) and time.monotonic() < deadline:
            time.sleep(0.1)
        cron.send_signal(signal.SIGTERM)
        assert cron.wait(timeout=10) == 0
    finally:
        if cron.poll() is None:
            cron.kill()
        output = cron.communicate(timeout=10)[0]
    jobs = runtime.queue.jobs
    assert sorted(job.func_name for job in jobs) == sorted(
        f"workers.jobs.{sweep.run.__name__}" for sweep in SWEEPS), output
    run_worker()
    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED, job.func_name
