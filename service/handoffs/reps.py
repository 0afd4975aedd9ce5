"""Keeping reps and teams in step with an HR or CRM system: upsert by email or name."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import peewee

from service.core.addresses import normalise_email
from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.models import Rep, Team
from service.core.text import one_line
from service.handoffs.queue import revoke_links

REP_TEXT = ("name", "manager_email", "time_zone")
REP_INTS = ("weight", "capacity")
REP_FLAGS = ("active", "out_of_office")


def upsert_team(data: dict) -> tuple[Team, bool]:
    name = data.get("name")
    name = one_line(name)[:255].rstrip() if isinstance(name, str) else ""  # reaches headers
    if not name:
        raise InvalidInput("name is required")
    fields = {}
    for key in ("manager_email", "fallback_email"):
        if data.get(key) is not None:
            fields[key] = normalise_email(data[key]) if data[key] else ""
    return _upsert(Team.name, name, fields)


def upsert_rep(data: dict, *, actor: str, now: datetime) -> tuple[Rep, bool]:
    """A rep made inactive loses the links to their queue page (service.handoffs.queue)."""
    email, fields = normalise_email(data.get("email")), _rep_fields(data)
    with transaction():
        was_active = Rep.select(Rep.active).where(Rep.email == email).scalar()
        rep, created = _upsert(Rep.email, email, fields)
        if was_active and not rep.active:
            revoke_links([rep.id], actor=actor, now=now)
    return Rep.get_by_id(rep.id), created


def _upsert(key: peewee.Field, value: str, fields: dict):
    """(row, created): the row whose unique key holds value, created or given the fields."""
    model = key.model
    with transaction():
        row = model.get_or_none(key == value)
        if row is None:
            return _create(model, **{key.name: value}, **fields), True
        if fields:
            model.update(**fields).where(model.id == row.id).execute()
    return model.get_by_id(row.id), False


def _create(model, **fields):
    try:
        with transaction():
            return model.create(**fields)
    except peewee.IntegrityError:
        raise InvalidInput("it was created by another request just now; send it again") from None


def _rep_fields(data: dict) -> dict:
    fields = {}
    for key in REP_TEXT:
        if data.get(key) is not None:
            if not isinstance(data[key], str):
                raise InvalidInput(f"{key} must be text")
            fields[key] = one_line(data[key])[:255].rstrip()  # a name reaches email headers
    if fields.get("manager_email"):
        fields["manager_email"] = normalise_email(fields["manager_email"])
    if "time_zone" in fields:
        check_time_zone(fields["time_zone"])
    for key in REP_INTS:
        if data.get(key) is not None:
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000:
                raise InvalidInput(f"{key} must be a whole number from 0 to 1000")
            fields[key] = value
    for key in REP_FLAGS:
        if data.get(key) is not None:
            if not isinstance(data[key], bool):
                raise InvalidInput(f"{key} must be true or false")
            fields[key] = data[key]
    for key in ("away_from", "away_until"):
        if key in data:
            fields[key] = _day(data[key], key)
    if "team" in data:
        fields["team"] = _team(data["team"])
    return fields


def check_time_zone(name: str) -> None:
    """A rep's time zone is an IANA name (Europe/London), as the API and the panel take it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}") from None


def _day(value, key: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"{key} must be a date like 2026-12-24") from None


def _team(name) -> int | None:
    if name in (None, ""):
        return None
    team = Team.get_or_none(Team.name == str(name))
    if team is None:
        raise InvalidInput(f"no team named {name!r}: create it first (POST /api/v1/teams)")
    return team.id
