"""Integration keys: webhook signing secrets and tracking write keys. The secret is shown
once at creation; write keys are stored only as a SHA-256 hash.

Intake asks on every request which source a write key belongs to and what a source's webhook
secrets are: each process remembers the answers for CACHE_SECONDS (a database query a
request was a fifth of a tracking call's time). So a key deactivated in the panel or by the
CLI is refused at once by the process that deactivated it and within CACHE_SECONDS by every
other. A new key works at once everywhere: nobody asked for a write key before it existed,
and a signature no remembered secret verifies is checked against the database's secrets."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime

from service.core.addresses import normalise_email
from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.fastsql import select_rows
from service.core.models import IntegrationKey

CACHE_SECONDS = 5.0  # how long a process may accept a key deactivated elsewhere
CACHE_ENTRIES = 4096  # answers remembered at most (forgotten all at once past it)
_cache: dict[tuple, tuple[float, object]] = {}
_cache_lock = threading.Lock()


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
    forget()  # a source's secrets change; write keys are looked up by a hash never asked
    return row, secret


def webhook_secrets(source: str, *, fresh: bool = False) -> list[str]:
    """Every active secret of the source: several at once while a secret is rotated.
    Remembered for CACHE_SECONDS; fresh asks the database (a signature none of the
    remembered secrets verifies may be from a secret just created in another process)."""
    return _remembered(("webhook", source), lambda: _active_secrets(source), fresh=fresh)


def _active_secrets(source: str) -> list[str]:
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
    """The source of an active write key, remembered for CACHE_SECONDS."""
    hashed = _hash(key)
    row = _remembered(("write_key", hashed), lambda: _key_row("write_key", key))
    return row[0] if row else None


def api_key(key: str) -> tuple[str, str] | None:
    """The name and owner of an active API key."""
    return _key_row("api", key)


def deactivate(key_ids: list[int]) -> int:
    with transaction():
        count = IntegrationKey.update(active=False).where(
            IntegrationKey.id.in_(key_ids)).execute()
    forget()
    return count


def forget() -> None:
    """Drop every remembered answer: keys changed here, or another database was bound."""
    with _cache_lock:
        _cache.clear()


def _remembered(question: tuple, look_up: Callable[[], object], *, fresh: bool = False):
    """The answer to question, asked of the database at most every CACHE_SECONDS."""
    now = time.time()
    entry = _cache.get(question)
    if entry is not None and entry[0] > now and not fresh:
        return entry[1]
    answer = look_up()
    with _cache_lock:
        if len(_cache) >= CACHE_ENTRIES:
            _cache.clear()
        _cache[question] = (now + CACHE_SECONDS, answer)
    return answer
