"""Versioned schema migrations, applied in order by `leadbridge init-db` (and `up`).
Add a new function to MIGRATIONS for every schema change; never edit an applied one."""

from __future__ import annotations

from collections.abc import Callable

from .db import db, transaction
from .models import TABLES, SchemaVersion


def _initial() -> None:
    db.create_tables(TABLES)


MIGRATIONS: list[tuple[int, str, Callable[[], None]]] = [
    (1, "initial schema", _initial),
]


def migrate() -> list[str]:
    """Apply pending migrations; return the names of those applied."""
    db.create_tables([SchemaVersion])
    done = {row.version for row in SchemaVersion.select(SchemaVersion.version)}
    applied = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        with transaction():
            step()
            SchemaVersion.create(version=version, name=name)
        applied.append(f"{version:04d} {name}")
    return applied


def current_version() -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0
