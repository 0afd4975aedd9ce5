"""The one owner of the database: a proxy bound at start, a base model, a transaction
helper that runs after-commit hooks, and per-request/per-job connection handling."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
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
    """One write transaction (BEGIN IMMEDIATE on SQLite). Hooks registered with
    after_commit run once the outermost transaction has committed."""
    if getattr(_hooks, "pending", None) is not None:
        with db.atomic():
            yield
        return
    _hooks.pending, _hooks.buckets = [], {}
    try:
        with db.atomic():
            yield
        pending = _hooks.pending
    finally:
        _hooks.pending = _hooks.buckets = None
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


def insert_rows(model: type[peewee.Model], rows: list[dict], *, ignore_conflicts=False) -> None:
    """Bulk insert with statements built once, instead of peewee rendering every value
    (several times faster for imports). SQLite's executemany runs in-process; with a server,
    where it would cost a round trip a row, rows go as multi-row INSERTs. Every row must name
    the same fields, including those with Python-side defaults."""
    if not rows:
        return
    if not isinstance(db.obj, peewee.SqliteDatabase):
        _insert_chunks(model, rows, ignore_conflicts, None)
        return
    statement = _insert(model, tuple(rows[0]), ignore_conflicts, 1, None, type(db.obj))
    params = [statement.values(row) for row in rows]
    with peewee.__exception_wrapper__:  # driver errors as peewee's, as execute_sql raises them
        db.cursor().executemany(statement.sql, params)


def insert_returning(model: type[peewee.Model], rows: list[dict], returning: str, *,
                     ignore_conflicts=False) -> list:
    """Multi-row INSERT … RETURNING one column: the values of the rows this call inserted
    (with ignore_conflicts, the unique index leaves out rows another call holds)."""
    return [row[0] for row in _insert_chunks(model, rows, ignore_conflicts, returning)]


def _insert_chunks(model: type[peewee.Model], rows: list[dict], ignore_conflicts: bool,
                   returning: str | None) -> list[tuple]:
    """Multi-row INSERTs of 512, 256, 128 … rows, so a few statement shapes cover any count."""
    found, start = [], 0
    while start < len(rows):
        size = min(512, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start:start + size]
        statement = _insert(model, tuple(chunk[0]), ignore_conflicts, size, returning,
                            type(db.obj))
        cursor = db.execute_sql(statement.sql, [value for row in chunk
                                                for value in statement.values(row)])
        found += cursor.fetchall() if returning else []
        start += size
    return found


def update_row(model: type[peewee.Model], row_id: int, values: dict) -> int:
    """UPDATE one row by id through a statement built once per set of fields: peewee renders
    every query anew, which shows in loops of one update a message."""
    fields = [model._meta.fields[name] for name in values]
    params = [field.db_value(value) for field, value in zip(fields, values.values(), strict=True)]
    return db.execute_sql(_update(model, tuple(values), type(db.obj)), [*params, row_id]).rowcount


@lru_cache(maxsize=64)
def _update(model: type[peewee.Model], names: tuple[str, ...], dialect: type) -> str:
    param, meta = db.obj.param, model._meta
    columns = ", ".join(f'"{meta.fields[name].column_name}" = {param}' for name in names)
    return (f'UPDATE "{meta.table_name}" SET {columns} '
            f'WHERE "{meta.primary_key.column_name}" = {param}')


def select_rows(build: Callable[..., peewee.Query], *groups: Sequence) -> list[tuple]:
    """The rows of build(*groups), with its SQL rendered once per shape instead of on every
    call. build is a module-level function whose query takes no parameters but the groups'
    values, in order and as the database stores them. Groups are padded to a power of two
    (repeating a value changes no IN list), so a few shapes cover every batch."""
    return run_rendered(build, *groups).fetchall()


def run_rendered(build: Callable[..., peewee.Query], *groups: Sequence):
    """Execute build(*groups) as select_rows does (for an UPDATE or DELETE); the cursor."""
    sizes = tuple(_padded_size(len(group)) for group in groups)
    params = [value for group, size in zip(groups, sizes, strict=True)
              for value in [*group, *group[-1:] * (size - len(group))]]
    return db.execute_sql(_rendered(build, sizes, type(db.obj)), params)


def _padded_size(length: int) -> int:
    return 1 << (length - 1).bit_length() if length else 0


@lru_cache(maxsize=256)
def _rendered(build: Callable[..., peewee.Query], sizes: tuple[int, ...], dialect: type) -> str:
    markers = [[1_000_000 * (i + 1) + j for j in range(size)] for i, size in enumerate(sizes)]
    sql, params = build(*markers).sql()
    if [str(value) for value in params] != [str(m) for group in markers for m in group]:
        raise ValueError(f"{build.__name__}: a query's only parameters must be its groups'")
    return sql


@dataclass(frozen=True)
class _Insert:
    sql: str
    names: tuple[str, ...]
    convert: tuple[tuple[int, Callable], ...]

    def values(self, row: dict) -> list:
        values = [row[name] for name in self.names]
        for i, db_value in self.convert:
            values[i] = db_value(values[i])
        return values


@lru_cache(maxsize=256)
def _insert(model: type[peewee.Model], names: tuple[str, ...], ignore_conflicts: bool,
            count: int, returning: str | None, dialect: type) -> _Insert:
    order = {field.name: i for i, field in enumerate(model._meta.sorted_fields)}
    fields = [model._meta.fields[name] for name in sorted(names, key=order.__getitem__)]
    query = model.insert_many([{field: None for field in fields}] * count)
    if ignore_conflicts:
        query = query.on_conflict_ignore()
    if returning:
        query = query.returning(model._meta.fields[returning])
    sql, _ = query.sql()
    columns = sql[sql.index("(") + 1:sql.index(")")].replace('"', "").replace("`", "")
    if [c.strip() for c in columns.split(",")] != [f.column_name for f in fields]:
        raise ValueError(f"rows for {model.__name__} must name every field with a default")
    return _Insert(sql, tuple(field.name for field in fields), tuple(
        (i, field.db_value) for i, field in enumerate(fields)
        if type(field) not in (peewee.CharField, peewee.TextField)))


def utcnow() -> datetime:
    return datetime.now(UTC)
