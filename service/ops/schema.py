"""Tools the migrations use to change a schema in place: add columns and indexes a table
lacks, and rebuild a SQLite table (with foreign keys off) where ALTER TABLE cannot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from peewee import Context, SqliteDatabase
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_operations

from service.core.db import AutoIncrementField, db


def add_missing_columns(model, *fields) -> None:
    table = model._meta.table_name
    present = {column.name for column in db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db.obj)
    run_operations(*[migrator.add_column(table, field.column_name, field)
                     for field in fields if field.column_name not in present])
    create_indexes(model, over={field.column_name for field in fields})


def create_indexes(model, over: set[str] | None = None) -> None:
    """The model's indexes (those over these columns, if named) whose every column exists:
    the models are today's, and a later migration may add the rest. Compared by name:
    Field == Field builds an expression."""
    present = {column.name for column in db.get_columns(model._meta.table_name)}
    for index in model._meta.fields_to_index():
        columns = index_columns(index, model._meta.table_name)
        if (over is None or over & columns) and columns <= present:
            db.execute(index.safe(True))


def index_columns(index, table: str) -> set[str]:
    """The columns an index covers (not those of its WHERE), read from its CREATE INDEX:
    peewee has no public attribute for them."""
    sql, _ = Context().sql(index).query()
    covered = sql.partition(f'ON "{table}" (')[2].partition(") WHERE ")[0]
    return set(re.findall(r'"([^"]+)"', covered))


def rebuild_keyed_as_model(model) -> None:
    """SQLite's procedure for changing a table (lang_altertable.html, "other kinds of table
    schema changes"), foreign keys being off: create the table anew from the model under
    another name, copy the rows with their ids, drop the old table, give the new one its
    name, create the old indexes again (partial ones too). Done when the table's key says
    AUTOINCREMENT and the model's does not, or the other way round."""
    table = model._meta.table_name
    found = db.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                           (table,)).fetchone()
    wanted = isinstance(model._meta.primary_key, AutoIncrementField)
    if found is None or ("AUTOINCREMENT" in found[0].upper()) == wanted:
        return  # created by a later version, or already created so
    indexes = [sql for (sql,) in db.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,))]
    model._meta.set_table_name(f"{table}__new")  # peewee's public way to create it elsewhere
    try:
        model._schema.create_table(safe=False)
    finally:
        model._meta.set_table_name(table)
    present = {column.name for column in db.get_columns(table)}
    fields = model._meta.sorted_fields
    kept = [f'"{field.column_name}"' for field in fields if field.column_name in present]
    # A column that a later version adds to the model gets its default, as add_column gives.
    added = [field for field in fields if field.column_name not in present and not field.null]
    names = ", ".join(kept + [f'"{field.column_name}"' for field in added])
    values = ", ".join(kept + ["?"] * len(added))
    db.execute_sql(f'INSERT INTO "{table}__new" ({names}) SELECT {values} FROM "{table}"',
                   [field.db_value(_default(field)) for field in added])
    db.execute_sql(f'DROP TABLE "{table}"')
    db.execute_sql(f'ALTER TABLE "{table}__new" RENAME TO "{table}"')
    for sql in indexes:
        db.execute_sql(sql)


def _default(field):
    if field.default is None:
        raise ValueError(f"{field.model.__name__}.{field.name} is not null and has no default")
    return field.default() if callable(field.default) else field.default


def foreign_key_problems() -> list[tuple]:
    return [tuple(row) for row in db.execute_sql("PRAGMA foreign_key_check").fetchall()]


@contextmanager
def foreign_keys_off() -> Iterator[None]:
    """For rebuilding SQLite tables: with foreign keys on, DROP TABLE would first delete every
    row and run the ON DELETE actions (cascading into activities, handoffs…). The pragma is
    a no-op inside a transaction, so it is set around the migration's one."""
    if not isinstance(db.obj, SqliteDatabase):
        yield
        return
    enabled = db.execute_sql("PRAGMA foreign_keys").fetchone()[0]
    db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        if db.execute_sql("PRAGMA foreign_keys").fetchone()[0]:
            raise RuntimeError("migrations must run outside a transaction")
        yield
    finally:
        db.execute_sql(f"PRAGMA foreign_keys = {int(enabled)}")
