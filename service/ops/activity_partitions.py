"""`leadbridge partition-activity`: the activity table range-partitioned by month of
occurred_at on PostgreSQL (the column the timeline, scoring and reports read by), so an old
month is detached or dropped at once instead of deleted row by row.

The first run converts the table in one transaction (rows moved, indexes and the foreign key
to lead made again on the partitioned table); every run creates the partitions of the next
months, moving rows that reached the default partition into their month. Run it monthly
from the system's cron; re-running changes nothing until a month is missing."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime

from peewee import PostgresqlDatabase

from service.core.db import db, transaction
from service.core.errors import DomainError

TABLE = "activity"
OLD = "activity_unpartitioned"  # the table's name while it is being converted
DEFAULT = "activity_default"  # catches any occurred_at without a month: an insert never fails
KEY = "occurred_at"
LOCK_TIMEOUT = "10s"  # give up rather than keep every recorder waiting behind the lock


@dataclass
class Partitioned:
    converted: bool = False  # this run turned the plain table into a partitioned one
    rows_moved: int = 0
    created: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        done = (f"activity partitioned by month: {self.rows_moved} row(s) moved"
                if self.converted else "activity is partitioned by month already")
        made = ", ".join(self.created) if self.created else "none needed"
        return f"{done}; partitions created: {made} ({self.seconds:.1f} s)"


def partition_activity(*, months_ahead: int, now: datetime) -> Partitioned:
    """Convert activity into monthly partitions if it is not yet, and make sure the months
    from now's to `months_ahead` later have theirs. One transaction."""
    if not isinstance(db.obj, PostgresqlDatabase):
        raise DomainError("partition-activity needs PostgreSQL: SQLite has no table "
                          "partitioning, and the activity table stays as it is")
    started = time.perf_counter()
    result = Partitioned()
    with transaction():
        db.execute_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        wanted = months_from(month_of(now), months_ahead + 1)
        if not is_partitioned():
            result.converted = True
            result.rows_moved, result.created = _convert(wanted)
        else:
            result.created = [_add_month(month) for month in wanted
                              if month_table(month) not in partitions()]
    result.seconds = time.perf_counter() - started
    return result


def _convert(wanted: list[date]) -> tuple[int, list[str]]:
    """Rename the table, create the partitioned one like it with a partition per month
    present or wanted and the default one, copy the rows, drop the old table, then make its
    indexes and foreign keys again (the primary key now includes occurred_at, and a unique
    index without it becomes a plain one: PostgreSQL enforces uniqueness per partition)."""
    referencing = _rows(f"SELECT conrelid::regclass::text FROM pg_constraint "
                        f"WHERE contype = 'f' AND confrelid = '{TABLE}'::regclass")
    if referencing:
        raise DomainError(f"partition-activity: {', '.join(r[0] for r in referencing)} has a "
                          "foreign key to activity(id); partitioning would break it")
    db.execute_sql(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
    sequence = _rows(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")[0][0]
    indexes = _rows(f"SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
                    f"FROM pg_index i WHERE i.indrelid = '{TABLE}'::regclass "
                    f"AND NOT i.indisprimary")
    foreign_keys = _rows(f"SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                         f"WHERE conrelid = '{TABLE}'::regclass AND contype = 'f'")
    db.execute_sql(f'ALTER TABLE "{TABLE}" RENAME TO "{OLD}"')
    db.execute_sql(f'CREATE TABLE "{TABLE}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING '
                   f'CONSTRAINTS INCLUDING STORAGE) PARTITION BY RANGE ("{KEY}")')
    if sequence:
        db.execute_sql(f'ALTER SEQUENCE {sequence} OWNED BY "{TABLE}"."id"')
    present = [row[0].date() for row in _rows(
        f'SELECT DISTINCT date_trunc(\'month\', "{KEY}") FROM "{OLD}"')]
    months = sorted(set(present) | set(wanted))
    created = [_create_month(month) for month in months]
    db.execute_sql(f'CREATE TABLE "{DEFAULT}" PARTITION OF "{TABLE}" DEFAULT')
    moved = db.execute_sql(f'INSERT INTO "{TABLE}" SELECT * FROM "{OLD}"').rowcount
    db.execute_sql(f'DROP TABLE "{OLD}"')
    db.execute_sql(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" '
                   f'PRIMARY KEY ("id", "{KEY}")')
    for name, definition in foreign_keys:
        db.execute_sql(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        db.execute_sql(_on_partitioned(definition))
    return moved, created


def _on_partitioned(definition: str) -> str:
    """An index of the old table, made on the partitioned one: unique only if it covers the
    partition key."""
    definition = re.sub(rf'\bON (\S+\.)?"?{OLD}"?', f'ON "{TABLE}"', definition)
    columns = definition.rpartition("(")[2]
    if definition.startswith("CREATE UNIQUE INDEX") and KEY not in columns:
        definition = definition.replace("CREATE UNIQUE INDEX", "CREATE INDEX", 1)
    return definition


def _create_month(month: date) -> str:
    name = month_table(month)
    db.execute_sql(f'CREATE TABLE "{name}" PARTITION OF "{TABLE}" '
                   f"FOR VALUES FROM ('{month}') TO ('{next_month(month)}')")
    return name


def _add_month(month: date) -> str:
    """A month's partition next to the default one: its rows there (an occurred_at in the
    future when the month had none yet) are moved into it, then it is attached."""
    name, start, end = month_table(month), month, next_month(month)
    db.execute_sql(f'CREATE TABLE "{name}" (LIKE "{TABLE}" INCLUDING DEFAULTS INCLUDING '
                   f'CONSTRAINTS INCLUDING STORAGE)')
    db.execute_sql(f'WITH moved AS (DELETE FROM "{DEFAULT}" WHERE "{KEY}" >= %s AND '
                   f'"{KEY}" < %s RETURNING *) INSERT INTO "{name}" SELECT * FROM moved',
                   (start, end))
    db.execute_sql(f'ALTER TABLE "{TABLE}" ATTACH PARTITION "{name}" '
                   f"FOR VALUES FROM ('{start}') TO ('{end}')")
    return name


def is_partitioned() -> bool:
    return _rows(f"SELECT relkind FROM pg_class WHERE oid = '{TABLE}'::regclass")[0][0] == "p"


def partitions() -> set[str]:
    return {row[0] for row in _rows(f"SELECT inhrelid::regclass::text FROM pg_inherits "
                                    f"WHERE inhparent = '{TABLE}'::regclass")}


def month_of(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_from(month: date, count: int) -> list[date]:
    months = [month]
    while len(months) < count:
        months.append(next_month(months[-1]))
    return months


def month_table(month: date) -> str:
    return f"{TABLE}_y{month.year:04d}m{month.month:02d}"


def _rows(sql: str) -> list[tuple]:
    return list(db.execute_sql(sql).fetchall())
