"""An email rebuilt from a provider's parsed fields (headers, text, HTML, attachments) as raw
RFC 822 bytes, for providers that post the parts rather than the message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import errors, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, HeaderParser

from service.core.errors import InvalidInput

# Written from the parts (the body) or once from the provider's own fields.
CONTENT = {"content-type", "content-transfer-encoding", "content-disposition", "content-id",
           "mime-version"}
ONCE = {"from", "to", "cc", "subject", "date", "message-id", "reply-to", "sender",
        "in-reply-to", "references", "return-path", "auto-submitted", "list-id", "precedence"}
NAME = re.compile(r"[!-9;-~]{1,76}")  # printable ASCII without ":"
FAILED = (ValueError, TypeError, LookupError, AttributeError, errors.MessageError)


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes


def rebuilt(headers: list[tuple[str, str]], *, text: str = "", html: str = "",
            attachments: tuple[Attachment, ...] = ()) -> bytes:
    """The message with these headers (the first of each ONCE header kept, content headers
    written from the parts) and these parts; InvalidInput when it cannot be written."""
    message = EmailMessage(policy=policy.default)
    try:
        for name, value in _kept(headers):
            message[name] = value
        if not message["From"]:
            raise InvalidInput("the message has no From")
        _body(message, text, html)
        for attachment in attachments:
            maintype, subtype = _type(attachment.content_type)
            message.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                                   filename=_line(attachment.name) or "attachment")
        return message.as_bytes(policy=policy.SMTP)
    except FAILED as exc:
        raise InvalidInput(f"cannot write the message: {type(exc).__name__}: {exc}") from None


def header_block(text: str) -> list[tuple[str, str]]:
    """The headers of a raw header block (SendGrid's `headers`), in order."""
    return [(name, str(value)) for name, value in HeaderParser(policy=policy.compat32)
            .parsestr(text.lstrip() + "\n\n", headersonly=True).items()]


def mime_headers(raw: bytes) -> list[tuple[str, str]]:
    """The top-level headers of a raw message."""
    return [(name, str(value)) for name, value in BytesHeaderParser(policy=policy.compat32)
            .parsebytes(raw).items()]


def header(headers: list[tuple[str, str]], name: str) -> str:
    """The first value of a header, "" when absent."""
    return next((value for key, value in headers if key.lower() == name.lower()), "")


def _kept(headers: list[tuple[str, str]]):
    seen = set()
    for name, value in headers:
        key = name.lower()
        if not NAME.fullmatch(name) or key in CONTENT or not value or key in seen:
            continue
        if key in ONCE:
            seen.add(key)
        yield name, _line(value)


def _line(value: str) -> str:
    """One header line: folded or injected line breaks become spaces."""
    return " ".join(str(value).split())


def _body(message: EmailMessage, text: str, html: str) -> None:
    if html and not text:
        message.set_content(html, subtype="html")
        return
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")


def _type(content_type: str) -> tuple[str, str]:
    maintype, _, subtype = str(content_type).split(";")[0].strip().lower().partition("/")
    if not NAME.fullmatch(maintype or "-") or not NAME.fullmatch(subtype or "-") or \
            maintype in ("multipart", "message", ""):
        return "application", "octet-stream"
    return maintype, subtype or "octet-stream"
