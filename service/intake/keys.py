"""Integration keys: webhook signing secrets and tracking write keys. The secret is shown
once at creation; write keys are stored only as a SHA-256 hash."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

from service.core.addresses import normalise_email
from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.fastsql import select_rows
from service.core.models import IntegrationKey


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(kind: str, source: str, *, sources: list[str], actor: str,
               now: datetime, owner: str = "") -> tuple[IntegrationKey, str]:
    """Return the new row and its secret, which is not shown again. An API key names its
    owner, the person it acts for: promotions made with it are theirs, and so is the
    feedback on them."""
    if kind not in IntegrationKey.KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(IntegrationKey.KINDS)}")
    if kind == "api":
        owner = normalise_email(owner) if owner else ""
        if not owner:
            raise InvalidInput("an API key needs an owner: the email of the person it acts for")
    if source not in sources:
        known = ", ".join(sources) or "none configured"
        raise InvalidInput(f"unknown {kind} source {source!r} (configured: {known})")
    if kind == "webhook":
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        fields = {"secret": secret}
    else:
        prefix = "lbwk_" if kind == "write_key" else "lbk_"
        secret = prefix + secrets.token_urlsafe(24)
        fields = {"key_hash": _hash(secret)}
    with transaction():
        row = IntegrationKey.create(kind=kind, source=source, hint=secret[:10] + "…",
                                    created_by=actor, created_at=now, owner=owner, **fields)
    return row, secret


def webhook_secrets(source: str) -> list[str]:
    """Every active secret of the source: several at once while a secret is rotated."""
    query = IntegrationKey.select(IntegrationKey.secret).where(
        IntegrationKey.kind == "webhook", IntegrationKey.source == source,
        IntegrationKey.active == True)  # noqa: E712
    return [row.secret for row in query]


def _key_row(kind: str, key: str) -> tuple[str, str] | None:
    """(source or name, owner) of an active key."""
    if not key:
        return None
    rows = select_rows(_active_key, [_hash(key)], [kind])
    return rows[0] if rows else None


def _active_key(hashes: list[str], kinds: list[str]):
    return IntegrationKey.select(IntegrationKey.source, IntegrationKey.owner).where(
        IntegrationKey.key_hash.in_(hashes), IntegrationKey.kind.in_(kinds),
        IntegrationKey.active)


def write_key_source(key: str) -> str | None:
    row = _key_row("write_key", key)
    return row[0] if row else None


def api_key(key: str) -> tuple[str, str] | None:
    """The name and owner of an active API key."""
    return _key_row("api", key)


def deactivate(key_ids: list[int]) -> int:
    with transaction():
        return IntegrationKey.update(active=False).where(IntegrationKey.id.in_(key_ids)).execute()
