"""Signed links: one salt per purpose, ids only in the payload, a max age. Each payload
also holds the lead's public id, which no other lead ever gets: a link whose row was
deleted, and whose id a newer row took, names nobody (see service.core.linked)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

HANDOFF_SALT = "leadbridge.handoff-decision"
UNSUBSCRIBE_SALT = "leadbridge.unsubscribe"
CLICK_SALT = "leadbridge.click"
ACTIONS = ("accept", "reject")


@dataclass(frozen=True)
class HandoffLink:
    handoff_id: int
    rep_id: int
    action: str
    public_id: str | None = None  # the lead's; None in links made before version 14
    issued_at: datetime | None = None  # when it was signed, to the second


@dataclass(frozen=True)
class UnsubscribeLink:
    lead_id: int
    public_id: str | None = None


@dataclass(frozen=True)
class ClickLink:
    outbox_id: int
    url: str
    public_id: str | None = None


class BadLink(Exception):
    status = 400


class ExpiredLink(BadLink):
    status = 410


def _public_id(rest: list) -> str | None:
    """The public id after the ids, or None for a link made before links carried one."""
    if not rest:
        return None
    if len(rest) == 1 and isinstance(rest[0], str) and rest[0]:
        return rest[0]
    raise ValueError("not a public id")


def handoff_token(secret: str, handoff_id: int, rep_id: int, action: str,
                  public_id: str) -> str:
    """A decision link bound to one handoff, its lead and the rep it was sent to."""
    return URLSafeTimedSerializer(secret, salt=HANDOFF_SALT).dumps(
        [handoff_id, rep_id, action, public_id])


def read_handoff_token(secret: str, token: str, *, max_age_hours: float) -> HandoffLink:
    serializer = URLSafeTimedSerializer(secret, salt=HANDOFF_SALT)
    try:
        (handoff_id, rep_id, action, *rest), issued_at = serializer.loads(
            token, max_age=int(max_age_hours * 3600), return_timestamp=True)
        public_id = _public_id(rest)
    except SignatureExpired:
        raise ExpiredLink("This link has expired.") from None
    except (BadSignature, ValueError, TypeError):
        raise BadLink("This link is not valid. Copy the whole link from the email.") from None
    if not isinstance(handoff_id, int) or not isinstance(rep_id, int) or action not in ACTIONS:
        raise BadLink("This link is not valid. Copy the whole link from the email.")
    return HandoffLink(handoff_id, rep_id, action, public_id, issued_at)


def unsubscribe_token(secret: str, lead_id: int, public_id: str) -> str:
    """No expiry: an unsubscribe link must keep working for as long as the mail exists."""
    return URLSafeSerializer(secret, salt=UNSUBSCRIBE_SALT).dumps([lead_id, public_id])


def read_unsubscribe_token(secret: str, token: str) -> UnsubscribeLink | None:
    try:
        payload = URLSafeSerializer(secret, salt=UNSUBSCRIBE_SALT).loads(token)
        if isinstance(payload, int):  # made before version 14: the id alone
            payload = [payload]
        lead_id, *rest = payload
        public_id = _public_id(rest)
    except (BadSignature, ValueError, TypeError):
        return None
    return UnsubscribeLink(lead_id, public_id) if isinstance(lead_id, int) else None


def click_token(secret: str, outbox_id: int, url: str, public_id: str) -> str:
    return URLSafeSerializer(secret, salt=CLICK_SALT).dumps([outbox_id, url, public_id])


def read_click_token(secret: str, token: str) -> ClickLink | None:
    """The email, the original URL and the lead; a redirect goes only to a URL signed here."""
    try:
        outbox_id, url, *rest = URLSafeSerializer(secret, salt=CLICK_SALT).loads(token)
        public_id = _public_id(rest)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(outbox_id, int) or not isinstance(url, str):
        return None
    if not url.startswith(("https://", "http://")):
        return None
    return ClickLink(outbox_id, url, public_id)
