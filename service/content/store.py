"""Versions of the content: the current one, the history, a new one. A change is a new
version, never an edit; two saves at once get distinct numbers (the unique index) or one
retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import peewee
from peewee import fn

from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.models import ContentVersion

SEQUENCE, TEMPLATE, REASONS = "sequence", "template", "reject_reasons"
REASONS_KEY = "all"  # the reject reasons are one document: one version holds them all


def current(kind: str, key: str) -> ContentVersion | None:
    return (ContentVersion.select()
            .where(ContentVersion.kind == kind, ContentVersion.key == key)
            .order_by(ContentVersion.version.desc()).first())


def current_all(kind: str) -> dict[str, ContentVersion]:
    """The current version of every key of a kind, in one query, by key."""
    latest = (ContentVersion.select(ContentVersion.key,
                                    fn.MAX(ContentVersion.version).alias("top"))
              .where(ContentVersion.kind == kind).group_by(ContentVersion.key))
    rows = (ContentVersion.select().join(latest, on=(
        (ContentVersion.key == latest.c.key) & (ContentVersion.version == latest.c.top)))
            .where(ContentVersion.kind == kind).order_by(ContentVersion.key))
    return {row.key: row for row in rows}


def version(kind: str, key: str, number: int) -> ContentVersion | None:
    return ContentVersion.get_or_none(ContentVersion.kind == kind, ContentVersion.key == key,
                                      ContentVersion.version == number)


def history(kind: str, key: str) -> list[ContentVersion]:
    """Every version, newest first."""
    return list(ContentVersion.select()
                .where(ContentVersion.kind == kind, ContentVersion.key == key)
                .order_by(ContentVersion.version.desc()))


class VersionMoved(InvalidInput):
    """The version an edit was made from is no longer the current one."""

    def __init__(self, latest: ContentVersion):
        super().__init__(f"version {latest.version} was saved by {latest.author} at "
                         f"{latest.created_at:%Y-%m-%d %H:%M} UTC meanwhile, after the one "
                         "this form was opened with: your text is kept below; compare it with "
                         "the history, then save again to replace that version")
        self.latest = latest


def add_version(kind: str, key: str, data: dict, *, author: str, now: datetime,
                describe: Callable[[dict | None, dict], str], note: str = "",
                based_on: int | None = None) -> ContentVersion:
    """Save data as the next version; describe(old data, new data) says what changed.
    based_on: the version the edit was made from (0: none existed); when another has been
    saved since, VersionMoved and nothing is saved (None: no such check)."""
    for _ in range(3):
        try:
            with transaction():
                latest = current(kind, key)
                if based_on is not None and (latest.version if latest else 0) != based_on:
                    if latest is None:
                        raise InvalidInput("this no longer exists: open the list again")
                    raise VersionMoved(latest)
                old = latest.data if latest else None
                if old == data:
                    raise InvalidInput("nothing changed: the current version is the same")
                summary = "; ".join(part for part in (describe(old, data), note.strip())
                                    if part)
                return ContentVersion.create(
                    kind=kind, key=key, version=(latest.version + 1) if latest else 1,
                    data=data, author=author, created_at=now, summary=summary[:2000])
        except peewee.IntegrityError:
            continue
    raise InvalidInput("another version was saved at the same moment; try again")


SEEDER = "config.toml"  # the author of versions written from the seeds


def seed_version(kind: str, key: str, data: dict, *, now: datetime) -> None:
    """Write the seed as the first version where none exists, or as the next one while no
    person has saved a version yet (the seed was edited in config.toml meanwhile); once
    someone has, the database holds the content and the seed is left alone. Two processes
    seeding at once write one version (the unique index keeps one, the other is ignored)."""
    latest = current(kind, key)
    if latest is not None and (latest.author != SEEDER or latest.data == data):
        return
    ContentVersion.insert(
        kind=kind, key=key, version=(latest.version + 1) if latest else 1, data=data,
        author=SEEDER, created_at=now,
        summary="seeded from config.toml and email_templates/nurture/"
    ).on_conflict_ignore().execute()
