"""One entry for every email that comes in, whatever brought it (IMAP, a provider's
webhook): kept once with its raw message, read, matched to its thread and acted on in one
transaction."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from service.core.db import transaction
from service.core.models import InboundEmail
from service.core.settings import Settings
from service.core.statuses import InboundStatus
from service.inbound.parse import BadMail, parse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    email_id: int
    status: str
    duplicate: bool = False


def dedup_key(raw: bytes, message_id: str) -> str:
    """The Message-ID when there is one (the same email by two channels is one email), else
    a digest of the bytes."""
    if message_id and len(message_id) <= 240:
        return f"mid:{message_id}"
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def receive(raw: bytes, *, channel: str, settings: Settings, secret: str, now: datetime,
            refused: str = "", authentication: str = "") -> Received:
    """Keep the email and act on it, once. `refused` says why its channel could not verify
    it: it is then kept unmatched with that reason, and nothing else happens.
    `authentication` is a failed sender check the channel reports ("dmarc=fail"): such an
    email is held for review, never posted."""
    limit = settings.inbound.max_message_kib * 1024
    try:
        mail = parse(raw[:limit]) if len(raw) <= limit else None
        reason = refused or ("" if mail else f"over inbound.max_message_kib ({len(raw)} bytes)")
    except BadMail as exc:
        mail, reason = None, f"cannot be read: {exc}"
    key = dedup_key(raw, mail.message_id if mail else "")
    with transaction():
        row = {"channel": channel, "dedup_key": key, "received_at": now, "raw": raw[:limit],
               "status": InboundStatus.UNMATCHED, "reason": reason or "no reply token"}
        if mail is not None:
            row |= {"message_id": mail.message_id[:998], "from_address": mail.from_address[:254],
                    "from_name": mail.from_name[:255], "subject": mail.subject[:998],
                    "text": mail.text}
        existing = InboundEmail.get_or_none(InboundEmail.dedup_key == key)
        if existing is not None:
            return Received(existing.id, existing.status, duplicate=True)
        email = InboundEmail.create(**row)
    return Received(email.id, email.status)
