"""The one owner of the database: a proxy bound at start, a base model, a transaction
helper that runs after-commit hooks, and per-request/per-job connection handling."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import peewee
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase

db = peewee.DatabaseProxy()
_hooks = threading.local()


def _sqlite(ctx) -> bool:
    return ctx.state.field_types.get("AUTO") == "INTEGER"  # the rowid itself


class AutoIncrementField(peewee.AutoField):
    """An integer id that is never handed out again once its row is deleted, so a link or
    a log line naming an id never comes to name another row. SQLite reuses the highest
    rowid unless the key says AUTOINCREMENT; PostgreSQL's SERIAL never reuses one."""

    def ddl(self, ctx):
        node = super().ddl(ctx)
        return peewee.NodeList((node, peewee.SQL("AUTOINCREMENT"))) if _sqlite(ctx) else node


RANDOM_TEXT = {"sqlite": "lower(hex(randomblob(16)))",
               "postgres": "replace(gen_random_uuid()::text, '-', '')"}


class RandomTextField(peewee.CharField):
    """32 random characters, which the database also makes itself for writers that do not
    name the column: bulk SQL, and the previous version's processes during an upgrade."""

    def ddl(self, ctx):
        random = RANDOM_TEXT["sqlite" if _sqlite(ctx) else "postgres"]
        return peewee.NodeList((super().ddl(ctx), peewee.SQL(f"DEFAULT ({random})")))


class BaseModel(peewee.Model):
    id = AutoIncrementField()

    class Meta:
        database = db
        legacy_table_names = False


class UTCDateTimeField(peewee.DateTimeField):
    """Stores naive UTC, returns aware UTC; refuses naive input so local time never leaks in."""

    def db_value(self, value):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{self.name}: naive datetime {value!r}; pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


LOCK_TIMEOUT_SECONDS = 5


def open_database(url: str, data_dir: Path) -> peewee.Database:
    """Build the database for a URL; empty means SQLite under the data folder."""
    if not url:
        url = f"sqlite:///{(data_dir / 'leadbridge.db').resolve()}"
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ":memory:"
        if not path.startswith((":", "file:")) and Path(path).parent.is_dir():
            _private_database_file(path)
        return peewee.SqliteDatabase(
            path, timeout=LOCK_TIMEOUT_SECONDS, lock_type="IMMEDIATE", pragmas={
                "journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1})
    if url.startswith(("postgres://", "postgresql://")):
        params = parse(url)
        name = params.pop("database")
        # Wait for a lock as long as SQLite does (5 s), then fail: the web answers 503.
        params.setdefault("options", f"-c lock_timeout={LOCK_TIMEOUT_SECONDS * 1000}")
        return PooledPostgresqlDatabase(name, max_connections=20, stale_timeout=300, **params)
    raise ValueError(f"database.url must be sqlite:/// or postgresql://, got {url!r}")


def _private_database_file(path: str) -> None:
    """Create the SQLite file readable by its owner only, before SQLite does (it gives its
    -wal and -shm files the database file's mode); tighten one made before."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with suppress(FileNotFoundError):
            if stat.S_IMODE(os.stat(name).st_mode) & 0o077:
                os.chmod(name, 0o600)


def bind(database: peewee.Database) -> None:
    db.initialize(database)


def connect() -> None:
    db.connect(reuse_if_open=True)


def release() -> None:
    """End of a request or job. SQLite keeps its connection open: closing the last
    connection to a WAL file checkpoints it and stalls the other processes."""
    if isinstance(db.obj, PooledPostgresqlDatabase) and not db.is_closed():
        db.close()


@contextmanager
def transaction() -> Iterator[None]:
    """One write transaction (BEGIN IMMEDIATE on SQLite). Writes gathered with write_last
    run at its end, before the commit; hooks registered with after_commit once the
    outermost transaction has committed."""
    if getattr(_hooks, "pending", None) is not None:
        with db.atomic():
            yield
        return
    _hooks.pending, _hooks.buckets, _hooks.last = [], {}, {}
    try:
        with db.atomic():
            yield
            for items, write in _hooks.last.values():
                write(items)
        pending = _hooks.pending
    finally:
        _hooks.pending = _hooks.buckets = _hooks.last = None
    for hook in pending:
        hook()


def collect(key: str, item, flush: Callable[[list], None]) -> None:
    """Gather items during the transaction and hand them to flush() once, after the commit
    (say, every email a sweep writes, queued in one round trip). Outside a transaction,
    flush([item]) runs at once."""
    buckets = getattr(_hooks, "buckets", None)
    if buckets is None:
        flush([item])
        return
    if key not in buckets:
        items = buckets[key] = []
        after_commit(lambda: flush(items))
    buckets[key].append(item)


def write_last(key: str, items: set, write: Callable[[set], None]) -> None:
    """Gather items during the transaction and write() them once at its end, just before
    the commit: for a row many transactions write (today's dirty day), taken last so that
    no transaction waits for it while holding what another holder waits for (a deadlock
    on PostgreSQL). Outside a transaction, write(items) runs at once."""
    last = getattr(_hooks, "last", None)
    if last is None:
        write(items)
        return
    last.setdefault(key, (set(), write))[0].update(items)


def lock(name: str) -> None:
    """Serialise a section across processes until the transaction ends. SQLite's write
    transactions are serial already; PostgreSQL takes an advisory lock."""
    if isinstance(db.obj, peewee.PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))


def after_commit(hook: Callable[[], None]) -> None:
    pending = getattr(_hooks, "pending", None)
    if pending is None:
        hook()
    else:
        pending.append(hook)


def utcnow() -> datetime:
    return datetime.now(UTC)


def change_stamp(now: datetime) -> datetime:
    """When a write marks a row changed (Lead.updated_at, which /api/v1/leads?changed_since
    pages by): the caller's `now`, or the clock if later: a long job's `now` is when it
    began, and a poller may have read past that before the job's later transactions
    commit."""
    return max(now, utcnow())
