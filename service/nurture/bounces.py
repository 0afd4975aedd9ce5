"""Bounces and complaints from email providers, normalised to one shape and applied: hard
bounces and complaints suppress at once, soft bounces after a number within a window.
One adapter per provider (in service/web/email_events.py) verifies and parses.

A signed delivery is recorded once (service.core.claims): the same delivery again (a
provider's retry) records nothing; the token again with other data is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from service.core.addresses import normalise_email
from service.core.claims import Signed, first_use
from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.models import EmailEvent
from service.core.settings import Settings
from service.nurture.suppression import suppress

KINDS = ("hard_bounce", "soft_bounce", "complaint", "other")


@dataclass(frozen=True)
class ProviderEvent:
    """One address a provider reports on: a hard or soft bounce, or a complaint."""
    email: str
    kind: str
    detail: str = ""


def apply(events: list[ProviderEvent], *, provider: str, raw, settings: Settings, now: datetime,
          signed: Signed | None = None) -> dict | None:
    """Record every event with the raw payload; suppress as the events say. None when the
    signed delivery was recorded before."""
    counts = dict.fromkeys(KINDS, 0)
    window = now - timedelta(days=settings.email_events.soft_bounce_days)
    with transaction():
        if signed is not None and not first_use(provider, signed, now):
            return None
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
                if recent >= settings.email_events.soft_bounce_limit:
                    suppress(email, reason="soft_bounces", source=provider, now=now)
    return counts

