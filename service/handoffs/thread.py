"""The conversation on a handoff between its rep and the marketer who promoted the lead:
a message from one side is kept on the handoff and emailed to the other. By email or from
the panel, the same function posts it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from service.core import outbox
from service.core.addresses import normalise_email
from service.core.db import transaction
from service.core.errors import InvalidInput, NotFound
from service.core.models import Handoff, HandoffMessage
from service.core.settings import Settings
from service.core.text import one_line

MAX_MESSAGE = 20_000  # characters kept of one message
EMAILS_PER_HOUR = 30
SIDES = ("rep", "marketer")
log = logging.getLogger(__name__)


def marketers(handoff: Handoff, settings: Settings) -> list[str]:
    """Who answers for marketing on this handoff: its promoter when that is a person's
    address, else whoever nurture.notify names (auto-promotions, API promotions)."""
    try:
        return [normalise_email(handoff.promoted_by)]
    except InvalidInput:
        return sorted({normalise_email(a) for a in settings.nurture.notify})


def side_of(handoff: Handoff, address: str, settings: Settings) -> str | None:
    """rep or marketer when address (normalised) is that side's participant, else None (a
    rep who has left is no longer one)."""
    try:
        address = normalise_email(address)
    except InvalidInput:
        return None
    if address == normalise_email(handoff.rep.email):
        return "rep" if handoff.rep.active else None
    return "marketer" if address in marketers(handoff, settings) else None


def post(handoff: Handoff, *, author: str, address: str, name: str, body: str, via: str,
         settings: Settings, now: datetime, inbound_id: int | None = None,
         kind: str = "message") -> HandoffMessage:
    """Keep the message on the thread and email it to the other side (an out-of-office
    note is kept and shown, not emailed)."""
    if author not in SIDES:
        raise InvalidInput(f"author must be one of {', '.join(SIDES)}")
    with transaction():
        message = HandoffMessage.create(
            handoff=handoff.id, author=author, author_address=address,
            author_name=one_line(name)[:255], body=body[:MAX_MESSAGE], at=now, via=via,
            kind=kind, inbound=inbound_id)
        if kind == "message" and _may_email(handoff.id, now):
            for to_address, to_name in _other_side(handoff, author, settings):
                outbox.queue_email("handoff_message", to_address=to_address, to_name=to_name,
                                   lead_id=handoff.lead_id, handoff_id=handoff.id, now=now,
                                   context={"message_id": message.id})
    return message


def _may_email(handoff_id: int, now: datetime) -> bool:
    """At most EMAILS_PER_HOUR messages of a thread go out by email in an hour: two
    auto-responders that do not say so cannot answer each other for ever. Past that the
    messages are kept and shown, not emailed."""
    recent = (HandoffMessage.select().where(
        HandoffMessage.handoff == handoff_id, HandoffMessage.kind == "message",
        HandoffMessage.at > now - timedelta(hours=1)).count())
    if recent > EMAILS_PER_HOUR:
        log.warning("handoff %d: over %d messages in an hour, not emailed", handoff_id,
                    EMAILS_PER_HOUR)
    return recent <= EMAILS_PER_HOUR


def _other_side(handoff: Handoff, author: str, settings: Settings) -> list[tuple[str, str]]:
    if author == "marketer":
        return [(handoff.rep.email, handoff.rep.name)]
    return [(address, "") for address in marketers(handoff, settings)]


def answer(handoff_id: int, *, address: str, name: str, text: str, settings: Settings,
           now: datetime) -> HandoffMessage:
    """A marketer's answer from the panel: it reaches the rep by email."""
    handoff = Handoff.get_or_none(Handoff.id == handoff_id)
    if handoff is None:
        raise NotFound(f"handoff {handoff_id} not found")
    text = text.strip()
    if not text:
        raise InvalidInput("write a message first")
    if len(text) > MAX_MESSAGE:
        raise InvalidInput(f"a message is at most {MAX_MESSAGE} characters")
    return post(handoff, author="marketer", address=address, name=name, body=text,
                via="panel", settings=settings, now=now)


def messages(handoff_ids: list[int]) -> list[HandoffMessage]:
    """The thread of these handoffs (one MQL episode may span several), oldest first."""
    return list(HandoffMessage.select().where(HandoffMessage.handoff.in_(handoff_ids))
                .order_by(HandoffMessage.at, HandoffMessage.id))


def reply_thread(row, settings: Settings) -> tuple[str, int, str] | None:
    """The thread a reply to this sent email belongs to, as (thread, id, role of whom it went
    to): a nurture email's enrollment and its prospect, or a handoff and the side of it the
    email went to. None for email nobody converses on (a digest, an escalation to a manager)."""
    if row.to_prospect:
        return ("enrollment", row.enrollment, "prospect") if row.enrollment else None
    if row.handoff_id is None or row.template not in CONVERSING:
        return None
    handoff = Handoff.get_or_none(Handoff.id == row.handoff_id)
    side = side_of(handoff, row.to_address, settings) if handoff else None
    return ("handoff", handoff.id, side) if side else None


# The emails about a handoff that its rep or its marketer may answer by replying.
CONVERSING = ("rep_handoff", "sla_reminder", "handoff_moved", "decision_feedback",
              "handoff_message")
