"""SQL built once and reused, on the paths where peewee building every query anew was most
of the time spent (measured by benchmarks/): bulk inserts for imports and intake, one-row
updates in send loops, lookups of a batch's leads and ids, and the score update of each
recorded lead. Everything else uses peewee's queries as they are; a function belongs here
only when a benchmark shows what it saves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import peewee

from service.core.db import db, transaction


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


def append_rows(model: type[peewee.Model], rows: list[dict]) -> None:
    """Insert rows in a transaction of their own, committed on return (accepting intake).
    On SQLite, outside any transaction, straight on the connection (BEGIN IMMEDIATE,
    executemany, COMMIT): a peewee transaction around one row cost as much again as the row;
    otherwise within transaction() through insert_rows."""
    if not rows:
        return
    if not isinstance(db.obj, peewee.SqliteDatabase) or db.in_transaction():
        with transaction():
            insert_rows(model, rows)
        return
    statement = _insert(model, tuple(rows[0]), False, 1, None, type(db.obj))
    params = [statement.values(row) for row in rows]
    connection = db.connection()
    with peewee.__exception_wrapper__:  # "database is locked" as peewee's OperationalError
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(statement.sql, params)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


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


def insert_all_returning(model: type[peewee.Model], rows: list[dict], returning: str, *,
                         rows_per_statement: int = 1000) -> list:
    """Multi-row INSERT … RETURNING one column, one statement for up to rows_per_statement
    rows (insert_returning takes 512, 256, 128 … per statement): a sweep writes a chunk of
    rows in a fixed number of statements whatever the count; none for no rows. The
    statement is the one-row statement built once, its VALUES group repeated."""
    found = []
    for start in range(0, len(rows), rows_per_statement):
        chunk = rows[start:start + rows_per_statement]
        one = _insert(model, tuple(chunk[0]), False, 1, returning, type(db.obj))
        head, tail = one.sql.split(" VALUES ", 1)
        group, rest = tail[:tail.index(")") + 1], tail[tail.index(")") + 1:]
        sql = f"{head} VALUES {', '.join([group] * len(chunk))}{rest}"
        cursor = db.execute_sql(sql, [value for row in chunk for value in one.values(row)])
        found += [row[0] for row in cursor.fetchall()]
    return found


def update_row(model: type[peewee.Model], row_id: int, values: dict) -> int:
    """UPDATE one row by id through a statement built once per set of fields: peewee renders
    every query anew, which shows in loops of one update a message."""
    fields = [model._meta.fields[name] for name in values]
    params = [field.db_value(value) for field, value in zip(fields, values.values(), strict=True)]
    return db.execute_sql(_update(model, tuple(values), type(db.obj)), [*params, row_id]).rowcount


def update_returning_ids(model: type[peewee.Model], values: dict, ids: list[int],
                         where: dict) -> list[int]:
    """UPDATE model SET values WHERE each field in `where` equals its value AND id IN ids,
    RETURNING the ids changed: a conditional update of many rows through a statement built
    once per shape (the ids padded to a power of two), where peewee renders every id anew."""
    if not ids:
        return []
    padded = [*ids, *ids[-1:] * (_padded_size(len(ids)) - len(ids))]
    sql = _update_in(model, tuple(values), tuple(where), len(padded), type(db.obj))
    params = [model._meta.fields[name].db_value(value)
              for name, value in [*values.items(), *where.items()]]
    return [row[0] for row in db.execute_sql(sql, [*params, *padded]).fetchall()]


@lru_cache(maxsize=64)
def _update_in(model: type[peewee.Model], names: tuple[str, ...], conditions: tuple[str, ...],
               count: int, dialect: type) -> str:
    param, meta = db.obj.param, model._meta
    key = meta.primary_key.column_name

    def column(name: str) -> str:
        return f'"{meta.fields[name].column_name}"'
    sets = ", ".join(f"{column(name)} = {param}" for name in names)
    tests = "".join(f"{column(name)} = {param} AND " for name in conditions)
    return (f'UPDATE "{meta.table_name}" SET {sets} WHERE {tests}"{key}" IN '
            f'({", ".join([param] * count)}) RETURNING "{key}"')


def update_from_values(model: type[peewee.Model], column: str, values: dict,
                       rows_per_statement: int = 1000) -> int:
    """Set `column` of many rows, each to its own value ({id: value}), in one UPDATE … FROM
    (VALUES …) per rows_per_statement rows (SQLite ≥ 3.33 and PostgreSQL), instead of an
    UPDATE a row. Returns how many rows it changed."""
    field, items = model._meta.fields[column], list(values.items())
    changed = 0
    for start in range(0, len(items), rows_per_statement):
        chunk = items[start:start + rows_per_statement]
        params = [value for key, value in chunk for value in (key, field.db_value(value))]
        changed += db.execute_sql(_update_from_values(model, column, len(chunk), type(db.obj)),
                                  params).rowcount
    return changed


@lru_cache(maxsize=64)
def _update_from_values(model: type[peewee.Model], column: str, count: int,
                        dialect: type) -> str:
    meta, param = model._meta, db.obj.param
    field = meta.fields[column]
    table, key = meta.table_name, meta.primary_key.column_name
    if issubclass(dialect, peewee.SqliteDatabase):  # VALUES columns are column1, column2
        rows = ", ".join([f"({param}, {param})"] * count)
        return (f'UPDATE "{table}" SET "{field.column_name}" = "v"."column2" FROM (VALUES '
                f'{rows}) AS "v" WHERE "{table}"."{key}" = "v"."column1"')
    kind = db.obj.field_types.get(field.field_type, field.field_type)  # NULLs alone: text
    rows = ", ".join([f"({param}, CAST({param} AS {kind}))"] * count)
    return (f'UPDATE "{table}" SET "{field.column_name}" = "v"."value" FROM (VALUES {rows}) '
            f'AS "v" ("key", "value") WHERE "{table}"."{key}" = "v"."key"')


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


@lru_cache(maxsize=4)
def score_update_sql(dialect: type) -> str:
    """Written out once rather than built per lead: peewee renders a query on each
    execute, which made this update most of a batch's time."""
    param = db.obj.param
    same = "IS" if isinstance(db.obj, peewee.SqliteDatabase) else "IS NOT DISTINCT FROM"
    return (f'UPDATE "lead" SET "last_activity_at" = CASE WHEN "last_activity_at" IS NULL '
            f'OR "last_activity_at" < {param} THEN {param} ELSE "last_activity_at" END, '
            f'"score_log" = {param} WHERE "id" = {param} AND "score_log" {same} {param}')
