"""The suppression list: addresses that never get prospect mail, whatever queued it."""

from __future__ import annotations

import hashlib
from datetime import datetime

from service import events
from service.core.db import transaction
from service.core.models import Lead, Suppression
from service.lifecycle.enrollments import stop_enrollments


def email_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def is_suppressed(email: str) -> bool:
    return Suppression.select().where(Suppression.email_hash == email_hash(email)).exists()


def suppressed_among(emails: list[str]) -> set[str]:
    """The addresses of these that are suppressed (lower-cased), in one query."""
    by_hash = {email_hash(e): e.strip().lower() for e in emails}
    found = Suppression.select(Suppression.email_hash).where(
        Suppression.email_hash.in_(list(by_hash)))
    return {by_hash[row.email_hash] for row in found}


OPTED_OUT = ("unsubscribe", "complaint")  # the prospect's own doing: bounces are not


def suppress(email: str, *, reason: str, source: str, now: datetime,
             keep_address: bool = True) -> bool:
    """Add the address (True if it was not there) and stop the lead's nurture sequences."""
    with transaction():
        added = (Suppression.insert(email_hash=email_hash(email),
                                    email=email.strip().lower() if keep_address else "",
                                    reason=reason, source=source, at=now)
                 .on_conflict_ignore().as_rowcount().execute()) == 1
        lead = Lead.get_or_none(Lead.email == email.strip().lower())
        if lead is not None:
            stop_enrollments(lead.id, reason=reason, now=now)
            if added and reason in OPTED_OUT:
                events.emit("lead.unsubscribed", lead.id, now=now)
    return added


