"""Counters for operators, kept in one Redis hash so every web process and worker adds to
the same numbers, and read out in Prometheus' text format at /metrics. Without Redis nothing
is counted (a counter is never worth failing a request for); a flushed Redis restarts the
counters, which Prometheus reads as a counter reset.

A process adds to its own tally and sends it to Redis a second after the first count (also
when a job ends, before /metrics answers and at exit): a round trip a request cost a web
worker more than some of the request's SQL."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from service.core.runtime import runtime

log = logging.getLogger(__name__)
HASH = "leadbridge:metrics"
FLUSH_SECONDS = 1.0
_tally: Counter = Counter()
_lock = threading.Lock()
_timer: threading.Timer | None = None  # sends the tally FLUSH_SECONDS after its first count

HELP = {
    "leadbridge_intake_accepted_total": "Tracking messages stored to record, by source.",
    "leadbridge_intake_events_total": "Activities recorded, by source.",
    "leadbridge_intake_duplicates_total": "Deliveries ignored as already recorded, by source.",
    "leadbridge_emails_sent_total": "Emails the SMTP server accepted, by template.",
    "leadbridge_emails_failed_total": "Emails refused for good or out of retries, by template.",
    "leadbridge_emails_retried_total": "Emails put back for a later try after a transient "
                                       "failure, by template.",
    "leadbridge_webhooks_delivered_total": "Webhook deliveries answered 2xx, by event type.",
    "leadbridge_webhooks_retried_total": "Webhook attempts that failed and wait for another "
                                         "try, by event type.",
    "leadbridge_webhooks_failed_total": "Webhook deliveries out of tries, by event type.",
    "leadbridge_webhooks_held_total": "Webhook deliveries not sent as their endpoint is off, "
                                      "by event type.",
    "leadbridge_sweep_seconds_total": "Time spent in each periodic sweep.",
    "leadbridge_sweep_runs_total": "Runs of each periodic sweep.",
}


def _field(name: str, labels: dict[str, str]) -> str:
    inside = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inside}}}" if inside else name


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def add(name: str, amount: float = 1, **labels) -> None:
    global _timer
    if runtime.redis is None or not amount:
        return
    with _lock:
        _tally[_field(name, labels)] += amount
        if _timer is None:
            _timer = threading.Timer(FLUSH_SECONDS, _flush_when_due)
            _timer.daemon = True
            _timer.start()


def _flush_when_due() -> None:
    global _timer
    with _lock:
        _timer = None
    try:
        flush()
    except Exception as exc:  # a closed pool can fail in the client library in any way
        log.debug("metrics not counted: %r", exc)


def _start_afresh() -> None:
    """In a forked child: no timer thread, and the parent's tally is the parent's to send."""
    global _timer
    _timer = None
    _tally.clear()


def flush() -> None:
    """Send this process's tally to Redis (lost if Redis is down: a counter is never worth
    failing a request for)."""
    with _lock:
        tally = dict(_tally)
        _tally.clear()
    client = runtime.redis  # held: a new binding would close this client's pool under us
    if not tally or client is None:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for field, amount in tally.items():
                pipe.hincrbyfloat(HASH, field, amount)
            pipe.execute()
    except (RedisError, OSError, ValueError) as exc:  # ValueError: a socket closed under it
        log.debug("%d metrics not counted: %s", len(tally), exc)


atexit.register(flush)
os.register_at_fork(after_in_child=_start_afresh)


@contextmanager
def timed(sweep: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        add("leadbridge_sweep_seconds_total", time.perf_counter() - started, sweep=sweep)
        add("leadbridge_sweep_runs_total", 1, sweep=sweep)


def exposition(gauges: dict[str, tuple[str, float]]) -> str:
    """The counters from Redis and the gauges given ({name: (help, value)}), as text."""
    counters = {}
    flush()
    if runtime.redis is not None:
        try:
            counters = runtime.redis.hgetall(HASH)
        except RedisError as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
    lines, by_name = [], {}
    for raw_field, raw_value in counters.items():
        field = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
        by_name.setdefault(field.split("{", 1)[0], []).append((field, float(raw_value)))
    for name in sorted(by_name):
        lines += [f"# HELP {name} {HELP.get(name, name)}", f"# TYPE {name} counter"]
        lines += [f"{field} {_number(value)}" for field, value in sorted(by_name[name])]
    for name, (text, value) in sorted(gauges.items()):
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
