"""Bounces and complaints from email providers, normalised to one shape and applied: hard
bounces and complaints suppress at once, soft bounces after a number within a window.
One adapter per provider (in service/web/email_events.py) verifies and parses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .db import transaction
from .errors import InvalidInput
from .intake import normalise_email
from .models import EmailEvent
from .suppression import suppress

KINDS = ("hard_bounce", "soft_bounce", "complaint", "other")


@dataclass(frozen=True)
class Delivery:
    email: str
    kind: str
    detail: str = ""


def apply(events: list[Delivery], *, provider: str, raw, settings: dict,
          now: datetime) -> dict:
    """Record every event with the raw payload; suppress as the events say."""
    counts = dict.fromkeys(KINDS, 0)
    window = now - timedelta(days=settings["email_events.soft_bounce_days"])
    with transaction():
        for event in events:
            try:
                email = normalise_email(event.email)
            except InvalidInput:
                continue
            EmailEvent.create(provider=provider, kind=event.kind, email=email, at=now,
                              detail=event.detail[:1000], raw=raw)
            counts[event.kind] += 1
            if event.kind in ("hard_bounce", "complaint"):
                suppress(email, reason=event.kind, source=provider, now=now)
            elif event.kind == "soft_bounce":
                recent = EmailEvent.select().where(
                    EmailEvent.email == email, EmailEvent.kind == "soft_bounce",
                    EmailEvent.at >= window).count()
                if recent >= settings["email_events.soft_bounce_limit"]:
                    suppress(email, reason="soft_bounces", source=provider, now=now)
    return counts
