"""The cursors of the polling endpoints (/api/v1/events, /api/v1/leads), and how far a page
may read without ever skipping a row that a slower transaction is still writing.

A cursor is opaque, url-safe text: the position of the last item handed out. On
PostgreSQL ids come from a sequence and transactions commit in any order, so a poller that
has read id 12 may later see id 11 appear. `settled_id` answers the highest id below which
nothing can appear any more: it reads the sequence, then waits (briefly) for the
transactions that were writing the table at that moment to end. SQLite runs one writer at a
time, so ids commit in order there. Lead pages order by the `updated_at` the application
wrote, which a transaction may commit after a later one: a page reads only up to
web.lead_poll_settle_seconds before now (after the same wait on PostgreSQL)."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import UTC, datetime, timedelta

import peewee

from service.core.db import db, utcnow
from service.core.errors import InvalidInput

WAIT_SECONDS = 2.0  # the longest a page waits for the writers of its table to finish
MAX_ID = 2**63 - 1


def _encode(kind: str, text: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}1:{text}".encode()).decode().rstrip("=")


def _decode(kind: str, cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    prefix, _, position = text.partition(":")
    if prefix != f"{kind}1" or not cursor.isascii():
        raise InvalidInput("the cursor is not one this API gave: pass next_cursor as it came")
    return position


def event_cursor(event_id: int) -> str:
    return _encode("e", str(event_id))


def read_event_cursor(cursor: str | None) -> int:
    """The event id a cursor stands after; 0 (the start) for none."""
    return 0 if cursor is None else _read_id("e", cursor)


def delivery_cursor(delivery_id: int) -> str:
    return _encode("d", str(delivery_id))


def read_delivery_cursor(cursor: str) -> int:
    """The delivery id a delivery log cursor stands before (the log runs newest first)."""
    return _read_id("d", cursor)


def _read_id(kind: str, cursor: str) -> int:
    position = _decode(kind, cursor)
    if not (position.isascii() and position.isdigit()) or int(position) > MAX_ID:
        raise InvalidInput("the cursor is not one this API gave: pass next_cursor as it came")
    return int(position)


def lead_cursor(updated_at: datetime, lead_id: int) -> str:
    return _encode("l", f"{updated_at.astimezone(UTC).isoformat()}|{lead_id}")


def read_lead_cursor(cursor: str) -> tuple[datetime, int]:
    """The (updated_at, id) a lead cursor stands after."""
    moment, _, lead_id = _decode("l", cursor).partition("|")
    try:
        at = datetime.fromisoformat(moment)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not (lead_id.isascii() and lead_id.isdigit()) \
            or int(lead_id) > MAX_ID:
        raise InvalidInput("the cursor is not one this API gave: pass next_cursor as it came")
    return at, int(lead_id)


def _postgres() -> bool:
    return isinstance(db.obj, peewee.PostgresqlDatabase)


def _writers(table: str) -> set[str]:
    """The other transactions holding a write lock on the table now (an INSERT takes it
    before it draws an id, and keeps it until its transaction ends)."""
    cursor = db.execute_sql(
        "SELECT virtualtransaction FROM pg_locks WHERE relation = %s::regclass "
        "AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()", (table,))
    return {row[0] for row in cursor.fetchall()}


def wait_for_writers(table: str) -> bool:
    """Wait until every transaction writing the table now has ended (True), or give up after
    WAIT_SECONDS (False). Rows written by transactions that start later are not waited for."""
    writers = _writers(table)
    deadline = time.monotonic() + WAIT_SECONDS
    while writers:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
        writers &= _writers(table)
    return True


def settled_id(model: type[peewee.Model]) -> int | None:
    """The highest id of the model's table at or below which every row is committed (or
    never will be); None for no limit (SQLite). 0 when the writers did not finish in time."""
    if not _postgres():
        return None
    table = model._meta.table_name
    [(last,)] = db.execute_sql(
        "SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'id'))", (table,)).fetchall()
    return (last or 0) if wait_for_writers(table) else 0


def settled_time(model: type[peewee.Model], settle: timedelta) -> datetime | None:
    """The latest updated_at a page may hand out now; None when writers did not finish."""
    bound = utcnow() - settle
    if _postgres() and not wait_for_writers(model._meta.table_name):
        return None
    return bound
