"""Versioned MQL and SQL definitions: a change is a new version, never an edit. A new MQL
definition is the agreement sales works to: every active rep gets its text by email."""

from __future__ import annotations

from datetime import datetime

import peewee

from service.core import outbox
from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.models import Definition, Rep


def add_definition(kind: str, *, text: str, agreed_by_marketing: str, agreed_by_sales: str,
                   agreed_at: datetime) -> Definition:
    if kind not in ("mql", "sql"):
        raise InvalidInput("kind must be mql or sql")
    if not text.strip():
        raise InvalidInput("the definition needs text")
    for _ in range(3):
        try:
            with transaction():
                latest = Definition.current(kind)
                made = Definition.create(
                    kind=kind, version=(latest.version + 1) if latest else 1, text=text.strip(),
                    agreed_by_marketing=agreed_by_marketing.strip(),
                    agreed_by_sales=agreed_by_sales.strip(), agreed_at=agreed_at)
                if kind == "mql":
                    tell_reps(made)
                return made
        except peewee.IntegrityError:
            continue
    raise InvalidInput("another version was saved at the same moment; try again")


def tell_reps(definition: Definition) -> int:
    """Queue the new definition to every active rep (in the caller's transaction)."""
    reps = Rep.select(Rep.email, Rep.name).where(Rep.active == True)  # noqa: E712
    for rep in reps:
        outbox.queue_email("definition_changed", to_address=rep.email, to_name=rep.name,
                           now=definition.agreed_at, context={"definition_id": definition.id})
    return len(reps)
