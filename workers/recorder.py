"""Records accepted tracking events: a thread beside each worker's job loop, which needs only
the database (tracking keeps being recorded while Redis is down). On PostgreSQL each
recorder leases a share of the partitions (service.intake.leases) on a connection it keeps
for as long as it runs, so workers record in parallel; on SQLite one records at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from service.core import db
from service.core.db import utcnow
from service.core.runtime import runtime
from service.intake.activity import pending_partitions, record_inbound, record_limit
from service.intake.leases import Lease, leased

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2  # how long an accepted event may wait when the recorder is idle
BACKOFF_SECONDS = 5


def drain() -> int:
    """Record every accepted event now, beside other recorders; return how many. Returns
    once nothing is left in the partitions this recorder holds or could get: what other
    recorders hold at their share is theirs to finish."""
    total, lease = 0, Lease()
    db.connect()
    try:
        while True:
            taken = _record_some(lease)
            total += taken
            if not taken and _done(lease):
                return total
    finally:
        _close(lease)


def _done(lease: Lease) -> bool:
    """Nothing taken: done, unless rebalancing gives this recorder partitions where events
    wait, or it is under its share while events wait elsewhere (other recorders give back
    what is over theirs within a rebalance)."""
    if not leased():
        return True
    lease.rebalance()
    pending = set(pending_partitions())
    if pending & lease.held:
        return False
    if not pending or len(lease.held) >= lease.share():
        return True
    time.sleep(POLL_SECONDS)
    return False


def _record_some(lease: Lease) -> int:
    return record_inbound(settings=runtime.settings, now=utcnow(),
                          partitions=lease.partitions())


def _close(lease: Lease) -> None:
    """Give the partitions back, and on PostgreSQL close the connection rather than return
    it to the pool (where it would keep a lock if giving them back failed)."""
    if leased():
        with suppress(Exception):
            lease.release()
        with suppress(Exception):
            db.db.manual_close()
    lease.forget()
    db.release()


def run(stop: threading.Event) -> None:
    lease = Lease()
    while not stop.is_set():
        try:
            db.connect()
            taken = _record_some(lease)
        except Exception:
            log.exception("recording accepted events failed; trying again in %ds",
                          BACKOFF_SECONDS)
            _close(lease)
            lease.forget()
            stop.wait(BACKOFF_SECONDS)
            continue
        if taken < record_limit():
            stop.wait(POLL_SECONDS)
    _close(lease)


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
