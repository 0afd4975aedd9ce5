"""A person's decision on an email nobody could place (unmatched) or that came from the
wrong sender (held): attach it to a lead, post it to its thread after all, or discard it.
Each is a conditional update: a second click, or two people at once, change it once."""

from __future__ import annotations

from datetime import datetime

from service.core.db import transaction
from service.core.errors import IllegalTransition, NotFound
from service.core.models import InboundEmail, Lead
from service.core.settings import Settings
from service.core.statuses import InboundStatus
from service.inbound import replies
from service.inbound.matching import Thread, find_thread
from service.inbound.parse import BadMail, parse
from service.lifecycle import audit

WAITING = (InboundStatus.HELD, InboundStatus.UNMATCHED)


def _decide(email_id: int, status: str, *, actor: str, now: datetime, **fields) -> None:
    changed = (InboundEmail.update(status=status, reviewed_by=actor, reviewed_at=now, **fields)
               .where(InboundEmail.id == email_id, InboundEmail.status.in_(WAITING))
               .execute())
    if not changed:
        if InboundEmail.get_or_none(InboundEmail.id == email_id) is None:
            raise NotFound(f"inbound email {email_id} not found")
        raise IllegalTransition(f"inbound email {email_id} was dealt with already")
    audit(actor, f"inbound_{status}", f"inbound_email:{email_id}", fields, now)


def discard(email_id: int, *, actor: str, now: datetime) -> None:
    with transaction():
        _decide(email_id, InboundStatus.DISCARDED, actor=actor, now=now)


def attach(email_id: int, lead_id: int, *, actor: str, now: datetime) -> None:
    """The email belongs to this lead: it shows on the lead's page."""
    with transaction():
        if Lead.get_or_none(Lead.id == lead_id) is None:
            raise NotFound(f"lead {lead_id} not found")
        _decide(email_id, InboundStatus.ATTACHED, actor=actor, now=now, lead=lead_id)


def release(email_id: int, *, actor: str, settings: Settings, secret: str,
            now: datetime) -> str:
    """A held email a person vouches for: posted to its thread as if its sender matched."""
    with transaction():
        email = InboundEmail.get_or_none(InboundEmail.id == email_id)
        if email is None:
            raise NotFound(f"inbound email {email_id} not found")
        if email.status != InboundStatus.HELD:
            raise IllegalTransition("only a held email can be posted to its thread")
        try:
            mail = parse(bytes(email.raw or b""))
        except BadMail as exc:
            raise IllegalTransition(f"this email cannot be read: {exc}") from None
        thread = find_thread(mail, Thread.Context(settings, secret, now))
        if isinstance(thread, str):
            raise IllegalTransition(thread)
        _decide(email_id, InboundStatus.ATTACHED, actor=actor, now=now, lead=thread.lead.id)
        status = replies.reply(email, mail, thread)
        InboundEmail.update(status=status).where(InboundEmail.id == email_id).execute()
    return status
