"""Which thread a received email answers: the signed token in the reply address it was
sent to, else the Message-ID of one of our emails in its In-Reply-To or References."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.core import links
from service.core.addresses import normalise_email
from service.core.errors import InvalidInput
from service.core.models import Enrollment, Handoff, Lead, OutboxEmail
from service.core.settings import Settings
from service.handoffs.thread import marketers, reply_thread, side_of
from service.inbound.parse import ParsedMail

EPOCH = datetime(1970, 1, 1).date()


@dataclass(frozen=True)
class Thread:
    """A handoff's thread (the email came from its rep or its marketer) or an enrollment's
    (from its prospect)."""

    @dataclass(frozen=True)
    class Context:
        settings: Settings
        secret: str
        now: datetime

    kind: str  # handoff, enrollment
    role: str  # rep, marketer, prospect: who the email we sent went to, so who answers
    lead: Lead
    context: Context
    handoff: Handoff | None = None
    enrollment: Enrollment | None = None

    def sent_by(self, address: str) -> bool:
        if self.handoff is not None:
            return side_of(self.handoff, address, self.context.settings) == self.role
        try:
            return normalise_email(address) == normalise_email(self.lead.email)
        except InvalidInput:
            return False

    def expected(self) -> str:
        if self.role == "rep":
            return self.handoff.rep.email
        if self.role == "marketer":
            return ", ".join(marketers(self.handoff, self.context.settings)) or "nobody"
        return self.lead.email

    def links(self) -> dict:
        return {"lead": self.lead.id, "handoff": self.handoff and self.handoff.id,
                "enrollment": self.enrollment and self.enrollment.id}


def load(kind: str, thread_id: int, role: str, context: Thread.Context) -> Thread | str:
    if kind == "handoff" and role in ("rep", "marketer"):
        handoff = Handoff.get_or_none(Handoff.id == thread_id)
        if handoff is not None:
            return Thread(kind, role, handoff.lead, context, handoff=handoff)
    elif kind == "enrollment" and role == "prospect":
        enrollment = Enrollment.get_or_none(Enrollment.id == thread_id)
        if enrollment is not None:
            return Thread(kind, role, enrollment.lead, context, enrollment=enrollment)
    return f"the {kind} it answers no longer exists"


def find_thread(mail: ParsedMail, context: Thread.Context) -> Thread | str:
    """The thread, or why none was found."""
    found = _by_token(mail, context)
    if found is None:
        found = _by_headers(mail, context)
    return found or "no reply token, and it answers no email Leadbridge sent"


def _by_token(mail: ParsedMail, context: Thread.Context) -> Thread | str | None:
    settings = context.settings
    if not settings.inbound.reply_address:
        return None
    local, _, domain = settings.inbound.reply_address.lower().rpartition("@")
    today = (context.now.date() - EPOCH).days
    failure = None
    for address in mail.recipients:
        name, _, at = address.lower().rpartition("@")
        base, plus, token = name.partition("+")
        if not (plus and base == local and at == domain):
            continue
        try:
            link = links.read_reply_token(context.secret, token, today=today,
                                          max_days=settings.inbound.reply_days)
        except links.BadLink as exc:
            failure = failure or str(exc)
            continue
        return load(link.thread, link.thread_id, link.role, context)
    return failure


def _by_headers(mail: ParsedMail, context: Thread.Context) -> Thread | str | None:
    answered = [*mail.in_reply_to, *reversed(mail.references)]
    if not answered:
        return None
    rows = {row.message_id: row for row in
            OutboxEmail.select().where(OutboxEmail.message_id.in_(answered[:50]))}
    for message_id in answered:
        if message_id in rows:
            thread = reply_thread(rows[message_id], context.settings)
            if thread is not None:
                return load(*thread, context)
    return None
