"""The worker and the cron scheduler processes."""

from __future__ import annotations

from rq import Queue, SimpleWorker
from rq.cron import CronJob, CronScheduler
from rq.serializers import JSONSerializer

from service import db, logs, metrics
from service.runtime import runtime

from . import jobs, recorder

SWEEPS = [(jobs.sweep_outbox, 60), (jobs.sweep_sla, 60), (jobs.sweep_nurture, 60),
          (jobs.refresh_reports, 60), (jobs.send_digest, 300)]


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
    for func, seconds in SWEEPS:
        scheduler._cron_jobs.append(
            SweepJob(queue_name=runtime.queue.name, func=func, interval=seconds,
                     job_timeout=300, result_ttl=600))
    return scheduler
