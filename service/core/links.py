"""Signed links: one salt per purpose, ids only in the payload, a max age. Each payload
also holds the lead's public id, which no other lead ever gets: a link whose row was
deleted, and whose id a newer row took, names nobody (see service.core.linked)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

# A signed link token (itsdangerous): payload, [timestamp,] signature of 27+ characters,
# after the path of its kind: decision, rep's queue, unsubscribe, click, password reset.
TOKEN_PATTERN = r"\.?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)?\.[A-Za-z0-9_-]{27,}(?![A-Za-z0-9_-])"
KINDS_PATTERN = r"(h|r|u|c|admin/reset)"
SIGNED_LINK = re.compile(f"/{KINDS_PATTERN}/" + TOKEN_PATTERN)
SIGNED_PATHS = ("/h/", "/r/", "/u/", "/c/", "/admin/reset/")  # a cheap test before the pattern

HANDOFF_SALT = "leadbridge.handoff-decision"
QUEUE_SALT = "leadbridge.rep-queue"
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
    # The rep's Rep.link_version when it was signed: revoked once it moves. None in links
    # made before decision links carried it (only their expiry ends them).
    link_version: int | None = None


@dataclass(frozen=True)
class QueueLink:
    rep_id: int
    link_version: int  # the rep's Rep.link_version when it was signed: revoked once it moves


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


def without_signed_links(text: str, placeholder: str = "/{}/(link removed)") -> str:
    """text with the token of every signed link replaced: a reply quoting a decision link
    must not pass it on to whoever reads the reply."""
    if not any(path in text for path in SIGNED_PATHS):
        return text
    return SIGNED_LINK.sub(lambda match: placeholder.format(match.group(1)), text)


def _public_id(rest: list) -> str | None:
    """The public id after the ids, or None for a link made before links carried one."""
    if not rest:
        return None
    if len(rest) == 1 and isinstance(rest[0], str) and rest[0]:
        return rest[0]
    raise ValueError("not a public id")


def _link_version(rest: list) -> int | None:
    """The rep's link version after the public id, or None for a link made before decision
    links carried one."""
    if not rest:
        return None
    if len(rest) == 1 and _whole_number(rest[0]):
        return rest[0]
    raise ValueError("not a link version")


def _whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def handoff_token(secret: str, handoff_id: int, rep_id: int, action: str,
                  public_id: str, link_version: int | None = None) -> str:
    """A decision link bound to one handoff, its lead and the rep it was sent to, revoked
    with the rep's queue links by moving the rep's link_version on (the emails always sign
    it; without one the link is of the older form that only its expiry ends)."""
    payload = [handoff_id, rep_id, action, public_id]
    if link_version is not None:
        payload.append(link_version)
    return URLSafeTimedSerializer(secret, salt=HANDOFF_SALT).dumps(payload)


def read_handoff_token(secret: str, token: str, *, max_age_hours: float) -> HandoffLink:
    serializer = URLSafeTimedSerializer(secret, salt=HANDOFF_SALT)
    try:
        (handoff_id, rep_id, action, *rest), issued_at = serializer.loads(
            token, max_age=int(max_age_hours * 3600), return_timestamp=True)
        public_id, link_version = _public_id(rest[:1]), _link_version(rest[1:])
    except SignatureExpired:
        raise ExpiredLink("This link has expired.") from None
    except (BadSignature, ValueError, TypeError):
        raise BadLink("This link is not valid. Copy the whole link from the email.") from None
    if not isinstance(handoff_id, int) or not isinstance(rep_id, int) or action not in ACTIONS:
        raise BadLink("This link is not valid. Copy the whole link from the email.")
    return HandoffLink(handoff_id, rep_id, action, public_id, issued_at, link_version)


def queue_token(secret: str, rep_id: int, link_version: int) -> str:
    """The link to one rep's queue of pending handoffs; revoked by moving the rep's
    link_version on."""
    return URLSafeTimedSerializer(secret, salt=QUEUE_SALT).dumps([rep_id, link_version])


def read_queue_token(secret: str, token: str, *, max_age_hours: float) -> QueueLink:
    serializer = URLSafeTimedSerializer(secret, salt=QUEUE_SALT)
    try:
        rep_id, link_version = serializer.loads(token, max_age=int(max_age_hours * 3600))
    except SignatureExpired:
        raise ExpiredLink("This link has expired. The next email from Leadbridge brings a new "
                          "one.") from None
    except (BadSignature, ValueError, TypeError):
        raise BadLink("This link is not valid. Copy the whole link from the email.") from None
    if not all(_whole_number(n) for n in (rep_id, link_version)):
        raise BadLink("This link is not valid. Copy the whole link from the email.")
    return QueueLink(rep_id, link_version)


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


# Reply addresses ---------------------------------------------------------------------------
# <local>+<token>@<domain>: a local part is at most 64 characters and may be lower-cased on
# the way, so the token is short, lower-case and signed with a truncated HMAC, not an
# itsdangerous payload. It names the thread (h: a handoff, e: an enrollment), whom the email
# went to (r: the rep, m: the marketer, p: the prospect) and the day it was made, never a lead.

REPLY_SALT = b"leadbridge.reply-address"
THREADS = {"h": "handoff", "e": "enrollment"}
ROLES = {"r": "rep", "m": "marketer", "p": "prospect"}
REPLY_MAC_CHARS = 16  # 80 bits


@dataclass(frozen=True)
class ReplyLink:
    thread: str  # handoff, enrollment
    thread_id: int
    role: str  # rep, marketer, prospect
    day: int  # days since 1970-01-01 when it was made


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def _reply_mac(secret: str, body: str) -> str:
    digest = hmac.new(secret.encode(), REPLY_SALT + b"|" + body.encode(), hashlib.sha256)
    return base64.b32encode(digest.digest()).decode().lower()[:REPLY_MAC_CHARS]


def reply_token(secret: str, thread: str, thread_id: int, role: str, day: int) -> str:
    kind = next(k for k, name in THREADS.items() if name == thread)
    who = next(k for k, name in ROLES.items() if name == role)
    body = f"{kind}{_base36(thread_id)}-{who}{_base36(day)}"
    return f"{body}-{_reply_mac(secret, body)}"


def read_reply_token(secret: str, token: str, *, today: int, max_days: int) -> ReplyLink:
    """The thread a reply token names; BadLink when it was not made here (or was changed),
    ExpiredLink when older than max_days."""
    body, _, mac = token.lower().rpartition("-")
    ids, _, rest = body[1:].partition("-")
    kind, who, day = body[:1], rest[:1], rest[1:]
    expected = _reply_mac(secret, body).encode()
    if not hmac.compare_digest(mac.encode(), expected) or len(mac) != REPLY_MAC_CHARS:
        raise BadLink("reply token does not verify")
    try:
        link = ReplyLink(THREADS[kind], int(ids, 36), ROLES[who], int(day, 36))
    except (KeyError, ValueError):
        raise BadLink("reply token does not verify") from None
    if not -1 <= today - link.day <= max_days:
        raise ExpiredLink(f"reply token older than {max_days} days")
    return link
