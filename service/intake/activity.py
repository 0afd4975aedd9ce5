"""Activity intake: every source normalises to Event and ends in record_events(), through
ingest() with the configured scoring and automatic promotion. Tracking calls are accepted
first (stored as they came, answered at once) and recorded by workers in batches, oldest
first."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import peewee

from service.core import metrics
from service.core.db import db, lock, transaction
from service.core.fastsql import insert_returning, run_rendered, select_rows
from service.core.models import Delivery, InboundEvent
from service.core.settings import Settings
from service.handoffs.actions import auto_promote
from service.intake.event import Event
from service.intake.recording import Batch, Recorded
from service.leads.scoring import Policy
from service.nurture import sequences as nurture

log = logging.getLogger(__name__)
RECORD_LIMIT = 2000  # accepted events recorded in one transaction (by each recorder)
SQLITE_RECORD_LIMIT = 4000  # by SQLite's one writer
RECORD_TRIES = 8  # a transaction aborted as a deadlock is tried again, up to this often
RETRIED_STATES = {"40P01", "40001", "55P03"}  # deadlock, serialization failure, lock timeout
T = TypeVar("T")


def record_events(events: list[Event], *, source: str, now: datetime,
                  policy: Policy | None = None, delivery_id: str | None = None) -> Recorded:
    """Record events in one transaction. With a delivery id, a re-delivery records nothing
    and returns duplicates=1 (the unique index on Delivery decides, even concurrently)."""
    result = Recorded()
    with transaction():
        if delivery_id is not None and not _first_deliveries(source, [delivery_id], now):
            result.duplicates = 1
            return result
        Batch(source, now, policy, result).record(events)
    return result


def ingest(events: list[Event], *, source: str, settings: Settings, now: datetime,
           delivery_id: str | None = None) -> Recorded:
    """Record events with the configured scoring, then auto-promote leads that crossed the
    threshold when that is switched on."""
    policy = Policy.from_settings(settings)
    result = record_events(events, source=source, now=now, policy=policy,
                           delivery_id=delivery_id)
    promote_crossed(result, settings, now)
    _count(result, source)
    return result


def record_limit() -> int:
    """Accepted events recorded in one transaction: SQLite's one writer takes larger
    batches (fewer commits, each lead's score written once for more of its events)."""
    return SQLITE_RECORD_LIMIT if isinstance(db.obj, peewee.SqliteDatabase) else RECORD_LIMIT


def record_inbound(*, settings: Settings, now: datetime, limit: int | None = None,
                   partitions: list[int] | None = None) -> int:
    """Record the oldest accepted events in order, in one transaction, and return how many
    were taken: those of the partitions this recorder holds (see service.intake.leases),
    or with None every partition, one recorder at a time. If that fails for a reason other
    than the database (a bad stored event), each is recorded on its own and one that still
    fails is set aside as failed. A transaction PostgreSQL aborts as a deadlock or a
    serialization failure is tried again."""
    limit = limit or record_limit()
    try:
        taken, results = _retried(lambda: _record(settings, now, limit, partitions))
    except peewee.OperationalError:
        raise
    except Exception:
        log.warning("recording up to %d accepted events together failed; one at a time",
                    limit, exc_info=True)
        taken, results = _record_one_at_a_time(settings, now, limit, partitions)
    for source, result in results:
        promote_crossed(result, settings, now)
        _count(result, source)
    return taken


def _retried(record: Callable[[], T]) -> T:
    for attempt in range(1, RECORD_TRIES + 1):
        try:
            return record()
        except peewee.OperationalError as exc:
            if attempt == RECORD_TRIES or _sqlstate(exc) not in RETRIED_STATES:
                raise
            log.info("recording was aborted (%s); trying again", _sqlstate(exc))
            # Jittered and doubling: two recorders that collided over the same leads start
            # again apart, not together into the same collision.
            time.sleep(random.uniform(0, min(2.0, 0.02 * 2 ** attempt)))
    raise AssertionError("unreachable")


def _sqlstate(exc: Exception) -> str | None:
    """PostgreSQL's code for the error peewee re-raised (the driver's error is its context)."""
    causes = (exc, *exc.args, exc.__cause__, exc.__context__)
    return next((code for cause in causes if (code := getattr(cause, "pgcode", None))), None)


def _record(settings: Settings, now: datetime, limit: int, partitions: list[int] | None,
            only: int | None = None) -> tuple[int, list[tuple[str, Recorded]]]:
    policy, results = Policy.from_settings(settings), []
    with transaction():
        if partitions is None:
            lock("record-inbound")  # one recorder at a time keeps each visitor's events in order
        rows = _oldest(limit, partitions, only)
        for source, run in _runs_by_source(rows):
            events = _first_of_each(source, run, now)
            results.append((source, Recorded(duplicates=len(run) - len(events))))
            Batch(source, now, policy, results[-1][1]).record(events)
        if rows:
            _delete_taken(rows, whole=partitions is None and only is None)
    return len(rows), results


def _record_one_at_a_time(settings: Settings, now: datetime, limit: int,
                          partitions: list[int] | None) -> tuple[int, list[tuple[str, Recorded]]]:
    taken, results = 0, []
    for row_id, *_ in _oldest(limit, partitions):
        try:
            done, recorded = _retried(lambda row_id=row_id: _record(
                settings, now, 1, partitions, only=row_id))
        except peewee.OperationalError:
            raise
        except Exception as exc:
            done, recorded = _set_aside(row_id, f"{type(exc).__name__}: {exc}"), []
        taken, results = taken + done, results + recorded
    return taken, results


def _oldest(limit: int, partitions: list[int] | None, only: int | None = None) -> list[tuple]:
    query = (InboundEvent.select(InboundEvent.id, InboundEvent.source,
                                 InboundEvent.delivery_id, InboundEvent.event)
             .where(InboundEvent.failed.is_null()).order_by(InboundEvent.id).limit(limit))
    if partitions is not None:
        query = query.where(InboundEvent.partition.in_(partitions))
    sql, params = (query.where(InboundEvent.id == only) if only else query).sql()
    return db.execute_sql(sql, params).fetchall()  # as stored: no field conversions needed


def pending_partitions() -> list[int]:
    """The partitions where accepted events wait to be recorded."""
    return [partition for (partition,) in InboundEvent.select(InboundEvent.partition).where(
        InboundEvent.failed.is_null()).distinct().tuples()]


def _delete_taken(rows: list[tuple], whole: bool) -> None:
    """Delete the rows taken. SQLite's one writer, having taken the oldest of every
    partition, deletes up to the last: no row before it can commit later, as an id given out
    under PostgreSQL's sequence can."""
    if whole and isinstance(db.obj, peewee.SqliteDatabase):
        InboundEvent.delete().where(InboundEvent.id <= rows[-1][0],
                                    InboundEvent.failed.is_null()).execute()
    else:
        run_rendered(_delete_inbound, [row[0] for row in rows])


def _delete_inbound(ids: list[int]):
    return InboundEvent.delete().where(InboundEvent.id.in_(ids))


def _runs_by_source(rows: list[tuple]) -> list[tuple[str, list[tuple]]]:
    """Consecutive rows of one source as (delivery id, stored event), kept in order."""
    runs: list[tuple[str, list[tuple]]] = []
    for _, source, delivery_id, stored in rows:
        if not runs or runs[-1][0] != source:
            runs.append((source, []))
        runs[-1][1].append((delivery_id, stored))
    return runs


def _first_of_each(source: str, run: list[tuple], now: datetime) -> list[Event]:
    """The events whose delivery id this call claims, each id's first in order; rows with
    no id were claimed when accepted."""
    fresh = _first_deliveries(source, [d for d, _ in run if d is not None], now)
    events = []
    for delivery_id, stored in run:
        if delivery_id is None or delivery_id in fresh:
            fresh.discard(delivery_id)
            events.append(Event.from_json(stored))
    return events


def _set_aside(row_id: int, reason: str) -> int:
    with transaction():
        marked = InboundEvent.update(failed=reason[:2000]).where(
            InboundEvent.id == row_id, InboundEvent.failed.is_null()).execute()
    if marked:
        log.error("accepted event %d could not be recorded and is set aside: %s", row_id,
                  reason)
    return marked


def _count(result: Recorded, source: str) -> None:
    metrics.add("leadbridge_intake_events_total", result.activities + result.anonymous,
                source=source)
    metrics.add("leadbridge_intake_duplicates_total", result.duplicates, source=source)


def promote_crossed(result: Recorded, settings: Settings, now: datetime) -> None:
    """After the commit: re-engaged nurtured leads, then automatic promotion."""
    intent = set(settings.nurture.high_intent_types)
    keen = sorted(lead_id for lead_id, kinds in result.kinds.items() if kinds & intent)
    if keen and settings.nurture.auto_repromote:
        for lead_id in nurture.actively_enrolled(keen):
            auto_promote(lead_id, settings=settings, now=now, note="Re-engaged during nurture.")
    elif keen:
        nurture.reengage(keen, settings=settings, now=now)
    if settings.scoring.auto_promote:
        for lead_id in sorted(result.crossed):
            auto_promote(lead_id, settings=settings, now=now)


def _first_deliveries(source: str, delivery_ids: list[str], now: datetime) -> set[str]:
    """Claim the delivery ids; return those not claimed before (even by a concurrent call:
    the unique index decides and RETURNING names the rows this call inserted)."""
    ids = dict.fromkeys(Delivery.stored_id(delivery_id) for delivery_id in delivery_ids)
    if isinstance(db.obj, peewee.SqliteDatabase):
        return _first_deliveries_alone(source, list(ids), now)
    return set(insert_returning(
        Delivery, [{"source": source, "delivery_id": delivery_id, "received_at": now}
                   for delivery_id in ids], "delivery_id", ignore_conflicts=True))


def _first_deliveries_alone(source: str, ids: list[str], now: datetime) -> set[str]:
    """SQLite, where this transaction is the one writer from its start: the ids not stored
    yet, looked up together and inserted in one executemany (several times cheaper than
    INSERT … RETURNING row by row)."""
    if not ids:
        return set()
    seen = {delivery_id for (delivery_id,) in select_rows(_claimed, [source], ids)}
    fresh = [delivery_id for delivery_id in ids if delivery_id not in seen]
    stamp = Delivery.received_at.db_value(now)
    with peewee.__exception_wrapper__:
        db.cursor().executemany(
            'INSERT INTO "delivery" ("source", "delivery_id", "received_at") VALUES (?, ?, ?)',
            [(source, delivery_id, stamp) for delivery_id in fresh])
    return set(fresh)


def _claimed(sources: list[str], delivery_ids: list[str]):
    return Delivery.select(Delivery.delivery_id).where(Delivery.source.in_(sources),
                                                       Delivery.delivery_id.in_(delivery_ids))
