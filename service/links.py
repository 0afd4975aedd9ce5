"""Signed links: one salt per purpose, ids only in the payload, a max age."""

from __future__ import annotations

from dataclasses import dataclass

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


class BadLink(Exception):
    status = 400


class ExpiredLink(BadLink):
    status = 410


def handoff_token(secret: str, handoff_id: int, rep_id: int, action: str) -> str:
    """A decision link bound to one handoff and the rep it was sent to."""
    return URLSafeTimedSerializer(secret, salt=HANDOFF_SALT).dumps([handoff_id, rep_id, action])


def read_handoff_token(secret: str, token: str, *, max_age_hours: float) -> HandoffLink:
    serializer = URLSafeTimedSerializer(secret, salt=HANDOFF_SALT)
    try:
        handoff_id, rep_id, action = serializer.loads(token, max_age=int(max_age_hours * 3600))
    except SignatureExpired:
        raise ExpiredLink("This link has expired.") from None
    except (BadSignature, ValueError, TypeError):
        raise BadLink("This link is not valid. Copy the whole link from the email.") from None
    if not isinstance(handoff_id, int) or not isinstance(rep_id, int) or action not in ACTIONS:
        raise BadLink("This link is not valid. Copy the whole link from the email.")
    return HandoffLink(handoff_id, rep_id, action)


def unsubscribe_token(secret: str, lead_id: int) -> str:
    """No expiry: an unsubscribe link must keep working for as long as the mail exists."""
    return URLSafeSerializer(secret, salt=UNSUBSCRIBE_SALT).dumps(lead_id)


def read_unsubscribe_token(secret: str, token: str) -> int | None:
    try:
        lead_id = URLSafeSerializer(secret, salt=UNSUBSCRIBE_SALT).loads(token)
    except BadSignature:
        return None
    return lead_id if isinstance(lead_id, int) else None


def click_token(secret: str, outbox_id: int, url: str) -> str:
    return URLSafeSerializer(secret, salt=CLICK_SALT).dumps([outbox_id, url])


def read_click_token(secret: str, token: str) -> tuple[int, str] | None:
    """The email and the original URL; a redirect goes only to a URL signed here."""
    try:
        outbox_id, url = URLSafeSerializer(secret, salt=CLICK_SALT).loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(outbox_id, int) or not isinstance(url, str):
        return None
    if not url.startswith(("https://", "http://")):
        return None
    return outbox_id, url
