"""Records accepted tracking events: a thread beside each worker's job loop, which needs only
the database (tracking keeps being recorded while Redis is down)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from service.core import db
from service.core.db import utcnow
from service.core.runtime import runtime
from service.intake.activity import RECORD_LIMIT, record_inbound

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2  # how long an accepted event may wait when the recorder is idle
BACKOFF_SECONDS = 5


def drain() -> int:
    """Record every accepted event now; return how many."""
    total = 0
    while taken := _record_some():
        total += taken
    return total


def _record_some() -> int:
    db.connect()
    try:
        return record_inbound(settings=runtime.settings, now=utcnow())
    finally:
        db.release()


def run(stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            taken = _record_some()
        except Exception:
            log.exception("recording accepted events failed; trying again in %ds",
                          BACKOFF_SECONDS)
            stop.wait(BACKOFF_SECONDS)
            continue
        if taken < RECORD_LIMIT:
            stop.wait(POLL_SECONDS)


@contextmanager
def running() -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(stop,), name="recorder", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
