"""One entry for every email that comes in, whatever brought it (IMAP, a provider's
webhook): kept once with its raw message, read, matched to its thread and acted on in one
transaction. Nothing is dropped: what cannot be placed is kept unmatched or held, with the
reason, for a person in the panel."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

import peewee

from service.core.db import transaction
from service.core.links import without_signed_links
from service.core.models import InboundEmail
from service.core.settings import Settings
from service.core.statuses import InboundStatus
from service.inbound import replies
from service.inbound.matching import Thread, find_thread
from service.inbound.parse import BadMail, ParsedMail, parse, without_attachments

log = logging.getLogger(__name__)
LIST_MARKS = ("Precedence: list", "Precedence: bulk", "List-Id")  # a person, through a list


@dataclass(frozen=True)
class Received:
    email_id: int
    status: str
    duplicate: bool = False


@dataclass
class Outcome:
    """What became of an email: its status, why, and the rows it now belongs to."""
    status: str
    reason: str = ""
    links: dict = field(default_factory=dict)  # lead, handoff, enrollment ids


def dedup_key(raw: bytes, mail: ParsedMail | None) -> str:
    """The Message-ID with the sender and the reply text (the same email by two channels, or
    a provider's retry, is one email; another email under a copied Message-ID is not), else
    a digest of the bytes."""
    if mail is None or not mail.message_id:
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    seen = "\n".join((mail.message_id, mail.from_address, mail.text))
    return "mid:" + hashlib.sha256(seen.encode("utf-8", "replace")).hexdigest()


def receive(raw: bytes, *, channel: str, settings: Settings, secret: str, now: datetime,
            refused: str = "", authentication: str = "") -> Received:
    """Keep the email and act on it, once. `refused` says why its channel could not verify
    it: it is then kept unmatched with that reason, and nothing else happens.
    `authentication` is a failed sender check the channel reports ("dmarc=fail"): such an
    email is held for review, never posted."""
    limit = settings.inbound.max_message_kib * 1024
    # A refused request is not read (nobody vouches for it), and is keyed by its bytes.
    mail, unread = _read(raw, limit) if not refused else (None, "")
    key = dedup_key(raw, mail)
    authentication = ", ".join(filter(None, (
        authentication, mail and failed_checks(mail, settings.inbound.authserv_id))))
    try:
        with transaction():
            existing = InboundEmail.get_or_none(InboundEmail.dedup_key == key)
            if existing is not None:
                return Received(existing.id, existing.status, duplicate=True)
            email = InboundEmail.create(channel=channel, dedup_key=key, received_at=now,
                                        raw=_kept(raw, limit), **_headline(mail))
            outcome = Outcome(InboundStatus.UNMATCHED, refused or unread)
            if mail is not None and not outcome.reason:
                outcome = _act(email, mail, Thread.Context(settings, secret, now),
                               authentication)
            InboundEmail.update(status=outcome.status, reason=outcome.reason[:2000],
                                **outcome.links).where(InboundEmail.id == email.id).execute()
    except peewee.IntegrityError:  # the same email, stored by a concurrent call
        existing = InboundEmail.get(InboundEmail.dedup_key == key)
        return Received(existing.id, existing.status, duplicate=True)
    log.info("inbound email %d by %s: %s %s", email.id, channel, outcome.status,
             outcome.reason)
    return Received(email.id, outcome.status)


def _read(raw: bytes, limit: int) -> tuple[ParsedMail | None, str]:
    """The email read, its reply text with our signed links made unusable (a reply quoting
    a decision link must not hand it to whoever reads the reply); or why it cannot be."""
    if len(raw) > limit:
        return None, f"larger than inbound.max_message_kib ({len(raw)} bytes): kept cut"
    try:
        mail = parse(raw)
    except BadMail as exc:
        return None, f"cannot be read as an email: {exc}"
    return replace(mail, text=without_signed_links(mail.text)), ""


CHECK = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*(fail|softfail)\b", re.IGNORECASE)


def failed_checks(mail: ParsedMail, authserv_id: str) -> str:
    """The sender checks that the trusted receiving server (inbound.authserv_id) says
    failed, from its Authentication-Results headers (RFC 8601): "spf=fail, dmarc=fail"."""
    if not authserv_id:
        return ""
    failed = []
    for value in mail.authentication_results:
        if value.split(";", 1)[0].split()[:1] == [authserv_id]:
            failed += [f"{name.lower()}=fail" for name, _ in CHECK.findall(value)]
    return ", ".join(dict.fromkeys(failed))


def _kept(raw: bytes, limit: int) -> bytes:
    """The raw message as stored: attachments replaced by a note, at most limit bytes."""
    if len(raw) <= limit:
        try:
            return without_attachments(raw)
        except BadMail:
            pass
    return raw[:limit]


def _headline(mail: ParsedMail | None) -> dict:
    if mail is None:
        return {}
    return {"message_id": mail.message_id[:998], "from_address": mail.from_address[:254],
            "from_name": mail.from_name[:255], "subject": mail.subject[:998],
            "text": mail.text, "attachments": [vars(a) for a in mail.attachments],
            "kind": _kind(mail)}


def _kind(mail: ParsedMail) -> str:
    if mail.report is not None:
        return "report"
    if mail.out_of_office:
        return "out_of_office"
    return "auto_reply" if mail.auto_reply else "reply"


def _act(email: InboundEmail, mail: ParsedMail, context: Thread.Context,
         authentication: str) -> Outcome:
    if mail.report is not None:
        return Outcome(*replies.delivery_report(email, mail.report, context))
    thread = find_thread(mail, context)
    if isinstance(thread, str):
        return Outcome(InboundStatus.UNMATCHED, thread)
    links = thread.links()
    participant = thread.sent_by(mail.from_address)
    if mail.auto_reply.startswith(LIST_MARKS) and participant:
        return Outcome(InboundStatus.HELD, f"the {thread.role} wrote through a list "
                       f"({mail.auto_reply}): a person to check it is theirs", links)
    if mail.auto_reply:  # never posted, whoever sent it
        return Outcome(InboundStatus.NOTED, replies.auto_reply(email, mail, thread), links)
    if not participant:
        return Outcome(InboundStatus.HELD, f"sent by {mail.from_address or 'nobody'}, not by "
                       f"the {thread.role} of this thread ({thread.expected()})", links)
    if authentication:
        return Outcome(InboundStatus.HELD, f"the sender did not pass its checks "
                       f"({authentication})", links)
    if not mail.text.strip():
        return Outcome(InboundStatus.HELD, "no reply text found above the quoted email", links)
    status = replies.reply(email, mail, thread)
    return Outcome(status, "", links)
