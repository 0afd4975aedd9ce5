"""The worker and the cron scheduler processes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rq import Queue, SimpleWorker
from rq.cron import CronJob, CronScheduler
from rq.serializers import JSONSerializer

from service import db, logs, metrics
from service.errors import InvalidInput
from service.runtime import runtime

from . import jobs, recorder


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
    Sweep("sla", jobs.sweep_sla, 60, _sla_outcome),
    Sweep("nurture", jobs.sweep_nurture, 60, lambda n: f"{n} step(s) queued"),
    Sweep("reports", jobs.refresh_reports, 60, lambda n: f"{n} day(s) recounted"),
    Sweep("digest", jobs.send_digest, 300, lambda sent: "queued" if sent else "not due"),
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
    return Worker([runtime.queue], connection=runtime.redis, serializer=JSONSerializer,
                  maintenance_interval=60)


class SweepJob(CronJob):
    """RQ's cron job, enqueued through a JSON-serialising queue like every other job."""

    def enqueue(self, connection):
        queue = Queue(self.queue_name, connection=connection, serializer=JSONSerializer)
        return queue.enqueue(self.func, **self.job_options)


def make_scheduler() -> CronScheduler:
    scheduler = CronScheduler(connection=runtime.redis)
    for sweep in SWEEPS:
        scheduler._cron_jobs.append(
            SweepJob(queue_name=runtime.queue.name, func=sweep.run, interval=sweep.seconds,
                     job_timeout=300, result_ttl=600))
    return scheduler
