"""The worker and the cron scheduler processes."""

from __future__ import annotations

import inspect
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from service.core import db, logs, metrics
from service.core.errors import InvalidInput
from service.core.runtime import runtime

from . import jobs, recorder

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Sweep:
    """A periodic job: cron runs it every `seconds`; `leadbridge sweep` runs it once and
    prints what `outcome` makes of its result."""

    name: str
    run: Callable[[], Any]
    seconds: int
    outcome: Callable[[Any], str]


def _sla_outcome(done: dict) -> str:
    return ", ".join(f"{n} {action}" for action, n in sorted(done.items()) if n) or "nothing due"


SWEEPS = (
    Sweep("outbox", jobs.sweep_outbox, 60, lambda n: f"{n} email(s) queued again"),
    # 5 s: a failed webhook's second try is due 5 s after its first (outbound.retry_seconds)
    Sweep("webhooks", jobs.sweep_webhooks, 5, lambda n: f"{n} webhook delivery(ies) queued"),
    Sweep("sla", jobs.sweep_sla, 60, _sla_outcome),
    Sweep("nurture", jobs.sweep_nurture, 60, lambda n: f"{n} step(s) queued"),
    Sweep("reports", jobs.refresh_reports, 60, lambda n: f"{n} day(s) recounted"),
    Sweep("digest", jobs.send_digest, 300, lambda sent: "queued" if sent else "not due"),
    Sweep("morning", jobs.send_morning_emails, 60, lambda n: f"{n} morning email(s) queued"),
    Sweep("deliveries", jobs.prune_deliveries, 3600,
          lambda n: f"{n} delivery id(s) past the dedupe window forgotten"),
)


def sweeps_named(only: str | None) -> list[Sweep]:
    """Every sweep, or the one called `only`."""
    if only is None:
        return list(SWEEPS)
    chosen = [sweep for sweep in SWEEPS if sweep.name == only]
    if not chosen:
        raise InvalidInput(f"no sweep named {only!r}; the sweeps are "
                           f"{', '.join(sweep.name for sweep in SWEEPS)}")
    return chosen


# The only functions a worker runs: Leadbridge's jobs, whoever put a job in the queue.
JOBS = frozenset(f"{jobs.__name__}.{name}" for name, function in vars(jobs).items()
                 if inspect.isfunction(function) and function.__module__ == jobs.__name__)


class RefusedJob(Exception):
    """A job that is none of Leadbridge's: failed without importing or running anything."""


class LeadbridgeJob(Job):
    """An RQ job that resolves its function only from JOBS, and has no callbacks (Leadbridge
    sets none; a callback is a function to import and run too)."""

    @property
    def func(self):
        if self.func_name not in JOBS or self.instance is not None:
            raise RefusedJob(f"refused job {self.func_name!r}: not one of Leadbridge's jobs")
        stored = self.to_dict(include_meta=False, include_result=False)
        if any(stored[f"{kind}_callback_name"] for kind in ("success", "failure", "stopped")):
            raise RefusedJob(f"refused job {self.func_name!r}: it names a callback")
        return super().func

    success_callback = failure_callback = stopped_callback = property(lambda self: None)


class Worker(SimpleWorker):
    """Runs jobs in-process (no fork per job) with a database connection around each, and
    records accepted tracking events beside them (in burst mode: all of them, first)."""

    def work(self, burst: bool = False, **kwargs) -> bool:
        if burst:
            recorder.drain()
            return super().work(burst=True, **kwargs)
        with recorder.running():
            return super().work(**kwargs)

    def execute_job(self, job, queue):
        db.connect()
        token = logs.job_id.set(job.id)
        try:
            return super().execute_job(job, queue)
        finally:
            logs.job_id.reset(token)
            db.release()
            metrics.flush()


def make_worker() -> Worker:
    """Maintenance each minute: a job whose worker was killed is cleaned up quickly, and the
    outbox sweep sends its rows again once their claim has lapsed."""
    _log_like_the_web()
    return Worker([runtime.queue], connection=runtime.redis, serializer=JSONSerializer,
                  job_class=LeadbridgeJob, maintenance_interval=60)


def _log_like_the_web() -> None:
    """Our log handler on the root logger (RQ then adds none of its own): every line with its
    job id, in the configured format, scrubbed."""
    logs.configure(runtime.settings.logging.level, runtime.settings.logging.format)


class SweepScheduler:
    """Puts each sweep in the queue at start and then every `sweep.seconds`, through the
    queue every job goes through (JSON). RQ's CronScheduler enqueues with pickle, which our
    worker refuses, and has no public way to choose the serializer."""

    def __init__(self, queue: Queue, sweeps: tuple[Sweep, ...] = SWEEPS):
        self.queue = queue
        self.due = {sweep: 0.0 for sweep in sweeps}  # time.monotonic() when each is next due

    def enqueue_due(self, now: float) -> float:
        """Queue the sweeps that are due; return the seconds until the next one is."""
        for sweep, due in self.due.items():
            if now >= due:
                self.queue.enqueue(sweep.run, job_timeout=300, result_ttl=600)
                log.info("queued the %s sweep", sweep.name)
                self.due[sweep] = now + sweep.seconds
        return max(0.0, min(self.due.values()) - now)

    def start(self) -> None:
        """Run until SIGINT or SIGTERM."""
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        log.info("cron: running the sweeps %s", ", ".join(sweep.name for sweep in self.due))
        while not stop.wait(self.enqueue_due(time.monotonic())):
            pass
        log.info("cron: stopped")


def make_scheduler() -> SweepScheduler:
    _log_like_the_web()
    return SweepScheduler(runtime.queue)
