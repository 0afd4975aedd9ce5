"""Activity intake: every source normalises to one activity shape and calls record_activity."""

from __future__ import annotations

from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from . import lifecycle
from .db import transaction
from .errors import InvalidInput
from .models import Activity, Lead


def normalise_email(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("email is required")
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"email is not valid: {exc}") from None
    return checked.normalized.lower()


def lead_fields(values: dict) -> dict:
    """Keep only known lead fields with non-empty text, trimmed and bounded."""
    return {name: str(values[name]).strip()[:255] for name in Lead.EDITABLE
            if values.get(name) not in (None, "") and str(values[name]).strip()}


def ensure_lead(email: str, *, fields: dict, source: str, now: datetime) -> Lead:
    """The lead for this email: captured if new, else updated with the fields given."""
    try:
        return lifecycle.capture(email, fields=fields, source=source, actor=source, now=now)
    except lifecycle.LeadExists:
        pass
    if fields:
        Lead.update(**fields, updated_at=now).where(Lead.email == email).execute()
    return Lead.get(Lead.email == email)


def record_activity(email: str, *, type: str, source: str, occurred_at: datetime,
                    now: datetime, properties: dict | None = None, fields: dict | None = None,
                    raw: dict | None = None) -> Activity:
    email = normalise_email(email)
    with transaction():
        lead = ensure_lead(email, fields=lead_fields(fields or {}), source=source, now=now)
        return Activity.create(lead=lead.id, type=type, source=source, occurred_at=occurred_at,
                               properties=properties or {}, raw=raw, created_at=now)
