"""Leases on the partitions of accepted events. On PostgreSQL each recorder holds
session-level advisory locks on its own connection: one saying it is alive, one per
partition it records. It takes at most its share (the partitions divided among the
recorders alive) and gives back what is over it, so recorders share the partitions fairly;
a recorder that dies gives its partitions up with its connection. SQLite has one writer:
its recorder records every partition (leases are not needed, and not taken)."""

from __future__ import annotations

import logging
import math
import random
import time

import peewee

from service.core.db import db
from service.intake.partitions import PARTITIONS

log = logging.getLogger(__name__)
ALIVE, PARTITION = 0x1EAD0, 0x1EAD1  # first keys of the two-key advisory locks
REBALANCE_SECONDS = 1.0  # how often a recorder counts the others and evens out its share
_RECORDERS = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
              "AND classid = %s AND objsubid = 2 "
              "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


def leased() -> bool:
    """Whether recorders take leases on this database (PostgreSQL) or one writes (SQLite)."""
    return isinstance(db.obj, peewee.PostgresqlDatabase)


class Lease:
    """The partitions one recorder holds, on the connection of the thread that records:
    every call must come from that thread, with the connection kept open in between."""

    def __init__(self, partitions: int = PARTITIONS):
        self.count = partitions
        self.held: set[int] = set()
        self.due = 0.0  # time.monotonic() of the next rebalance
        self.alive = False

    def partitions(self) -> list[int] | None:
        """The partitions to record now, after rebalancing when due; None for all (SQLite)."""
        if not leased():
            return None
        if time.monotonic() >= self.due:
            self.rebalance()
        return sorted(self.held)

    def rebalance(self) -> None:
        """Give back what is over this recorder's share, then take free partitions up to
        it (at random, so recorders starting together spread out)."""
        if not self.alive:
            self.alive = _try_lock(ALIVE, _backend_pid())
        share, before = self.share(), set(self.held)
        for partition in sorted(self.held)[share:]:
            _unlock(PARTITION, partition)
            self.held.discard(partition)
        free = [p for p in range(self.count) if p not in self.held]
        random.shuffle(free)
        for partition in free:
            if len(self.held) >= share:
                break
            if _try_lock(PARTITION, partition):
                self.held.add(partition)
        self.due = time.monotonic() + REBALANCE_SECONDS
        if self.held != before:
            log.info("recording %d of %d partitions (a share of %d)", len(self.held),
                     self.count, share)

    def share(self) -> int:
        recorders = max(1, db.execute_sql(_RECORDERS, (ALIVE,)).fetchone()[0])
        return math.ceil(self.count / recorders)

    def release(self) -> None:
        """Give every partition back (the connection stays open)."""
        if self.held or self.alive:
            db.execute_sql("SELECT pg_advisory_unlock_all()")
        self.forget()

    def forget(self) -> None:
        """After the connection was lost: the server released everything with it."""
        self.held, self.alive, self.due = set(), False, 0.0


def _backend_pid() -> int:
    return db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def _try_lock(key: int, value: int) -> bool:
    return db.execute_sql("SELECT pg_try_advisory_lock(%s, %s)", (key, value)).fetchone()[0]


def _unlock(key: int, value: int) -> None:
    db.execute_sql("SELECT pg_advisory_unlock(%s, %s)", (key, value))
