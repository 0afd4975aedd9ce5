"""Reading one received email: who sent it, what it answers, the reply text alone, and
whether a machine wrote it (an auto-reply, a delivery report).

The reply text is cut from its quoted history and signature by mail-parser-reply (quote
headers in many languages); an HTML-only email is first made text by html-text, after the
quoted blocks that mail clients mark in HTML are removed. Attachments are noted (name,
type, size), never kept: `without_attachments` gives the raw message to store."""

from __future__ import annotations

import base64
import quopri
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import MIMEPart
from email.utils import getaddresses, parseaddr

import html_text
import lxml.html
from lxml import etree
from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES

# Languages whose quote headers ("On … wrote:", "Am … schrieb …:", "From: … Sent: …") and
# signatures are recognised; mail-parser-reply has no Portuguese yet, so it is left out.
REPLY_LANGUAGES = tuple(language for language in (
    "en", "de", "fr", "es", "nl", "it", "pt", "sv", "da", "pl", "cs", "ja", "ko", "zh")
    if language in MAIL_LANGUAGES)

# The reply is at the top: only this much of a body is searched for it, so that a message
# of inbound.max_message_kib is read in well under a second (the search is linear, ~3 µs/char).
TEXT_LIMIT = 200_000

RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To",
                     "X-Forwarded-To")
LIST_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
OUT_OF_OFFICE_SUBJECT = re.compile(
    r"automatic reply|auto[- ]?reply|autoreply|out of (?:the )?office|\booo\b|vacation"
    r"|abwesenheit|automatische antwort|absence|absent|réponse automatique"
    r"|respuesta automática|fuera de la oficina|risposta automatica|fuori sede"
    r"|automatisch antwoord|afwezig|autosvar|frånvaro|fravær|odpowiedź automatyczna"
    r"|resposta automática|ausência|自動応答|不在", re.IGNORECASE)

HYPHEN_ITEM = re.compile(r"^([ \t]*(?:> ?)*)-(?= ?\w)", re.MULTILINE)
LIST_MARK = "\ue000"  # a private-use character stands for the hyphen while the reply is cut

DATE_OR_TIME = re.compile(r"\b\d{4}\b|\b\d{1,2}:\d{2}\b|\d{4}年")
ATTRIBUTION = re.compile(r"(?:@|\b\d{4}\b|\b\d{1,2}:\d{2}\b|\d{4}年).*[:：]\s*$")

# Quoted history as mail clients mark it in HTML: removed with everything inside.
QUOTE_BLOCKS = ("//div[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"
                "|//div[contains(concat(' ', normalize-space(@class), ' '),"
                " ' gmail_quote_container ')]"
                "|//div[contains(concat(' ', normalize-space(@class), ' '), ' yahoo_quoted ')]"
                "|//div[contains(concat(' ', normalize-space(@class), ' '),"
                " ' moz-cite-prefix ')]"
                "|//blockquote[translate(@type, 'CITE', 'cite') = 'cite']")
# Outlook puts the quoted message AFTER its header block: everything from here on goes.
QUOTE_STARTS = "//*[@id='divRplyFwdMsg' or @id='appendonsend' or @class='OutlookMessageHeader']"


class BadMail(Exception):
    """The bytes are not an email that can be read."""


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int  # decoded bytes


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
    authentication_results: list[str] = field(default_factory=list)  # the headers, as given


def parse(raw: bytes) -> ParsedMail:
    """Read a received email. Raises BadMail, and nothing else, when it cannot be read."""
    message = _message(raw)
    try:
        return _parsed(message)
    # The email package meets any input, and reports some of it by raising whatever its
    # parsers raise: for a received email that is bad mail, never a crash of the receiver.
    except Exception as exc:
        raise BadMail(f"{type(exc).__name__}: {exc}") from None


def without_attachments(raw: bytes) -> bytes:
    """The same email with each attachment's content replaced by a short note, so that the
    raw message can be kept without them. An email without attachments comes back as is."""
    message = _message(raw, policy.compat32)
    try:
        parts = list(_attachment_parts(message))
        if not parts:
            return raw
        for part in parts:
            _replace_with_note(part, _attachment(part), inside=part is not message)
        linesep = "\r\n" if b"\r\n" in raw else "\n"
        return message.as_bytes(policy=message.policy.clone(linesep=linesep))
    except Exception:  # as in parse(): keep the headers, drop the body
        head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
        return head + b"\r\n\r\n[attachments not kept: the body could not be rewritten]\r\n"


def _message(raw: bytes, mail_policy=policy.default) -> MIMEPart:
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise BadMail("empty")
    try:
        message = message_from_bytes(bytes(raw), _class=MIMEPart, policy=mail_policy)
    except Exception as exc:
        raise BadMail(f"{type(exc).__name__}: {exc}") from None
    if not message.keys():
        raise BadMail("no header")
    return message


def _parsed(message: MIMEPart) -> ParsedMail:
    name, address = _sender(message)
    auto_reply = _auto_reply(message)
    return ParsedMail(
        message_id=_first_id(_header(message, "Message-ID")),
        in_reply_to=_ids(_header(message, "In-Reply-To")),
        references=_ids(_header(message, "References")),
        from_address=address, from_name=name,
        recipients=_recipients(message),
        subject=_header(message, "Subject"),
        text=reply_text(message),
        attachments=[_attachment(part) for part in _attachment_parts(message)],
        auto_reply=auto_reply,
        out_of_office=bool(auto_reply) and _out_of_office(message),
        report=_delivery_report(message),
        authentication_results=[value[:2000] for value in
                                _headers(message, "Authentication-Results")])


# --- headers ---------------------------------------------------------------------------

def _header(message: MIMEPart, name: str) -> str:
    return next(iter(_headers(message, name)), "")


def _headers(message: MIMEPart, name: str) -> list[str]:
    """Every value of a header, decoded; a value that cannot be decoded is taken raw."""
    values = []
    for key, raw in message.raw_items():
        if key.lower() != name.lower():
            continue
        try:
            values.append(str(message.policy.header_fetch_parse(key, raw)))
        except Exception:  # an undecodable header is read as it came
            values.append(str(raw))
    return [" ".join(_clean(value).split()) for value in values]


def _clean(text: str) -> str:
    """Text any database keeps: raw 8-bit bytes read as UTF-8 (else replaced), no NUL."""
    text = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    return text.replace("\x00", "")


def _sender(message: MIMEPart) -> tuple[str, str]:
    name, address = parseaddr(_header(message, "From"))
    return (name, address.lower()) if "@" in address else (name, "")


def _recipients(message: MIMEPart) -> list[str]:
    values = [value for name in RECIPIENT_HEADERS for value in _headers(message, name)]
    addresses = [address.strip().lower() for _, address in getaddresses(values)]
    return list(dict.fromkeys(address for address in addresses if "@" in address))


def _ids(value: str) -> list[str]:
    ids = re.findall(r"<[^<>\s]+>", value)
    return ids or [f"<{token}>" for token in value.split() if "@" in token and "<" not in token]


def _first_id(value: str) -> str:
    return next(iter(_ids(value)), value.strip())


# --- auto-replies and delivery reports -------------------------------------------------

def _auto_reply(message: MIMEPart) -> str:
    """Why a machine wrote this email (RFC 3834 and the headers auto-responders use),
    else "". X-Auto-Response-Suppress is a request to others, not a mark of a machine."""
    auto_submitted = _header(message, "Auto-Submitted").lower()
    precedence = _header(message, "Precedence").lower()
    if message.get_content_type() == "multipart/report":
        return "delivery report"
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond"):
        if name in message:
            return name
    if precedence in LIST_PRECEDENCE:
        return f"Precedence: {precedence}"
    if "List-Id" in message:
        return "List-Id"
    if any(value.replace(" ", "") == "<>" for value in _headers(message, "Return-Path")):
        return "empty return path"
    return ""


def _out_of_office(message: MIMEPart) -> bool:
    if "X-Autoreply" in message or "X-Autorespond" in message:
        return True
    replied = (_header(message, "Auto-Submitted").lower().startswith("auto-replied")
               or _header(message, "Precedence").lower() == "auto_reply")
    return replied and bool(OUT_OF_OFFICE_SUBJECT.search(_header(message, "Subject")))


def _delivery_report(message: MIMEPart) -> DeliveryReport | None:
    if (message.get_content_type() != "multipart/report"
            or message.get_param("report-type", "").lower() != "delivery-status"):
        return None
    recipients, original = [], ""
    for part in message.iter_parts():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            recipients = [_recipient_status(block) for block in _status_blocks(part)[1:]]
        elif kind in ("text/rfc822-headers", "message/rfc822", "message/rfc822-headers"):
            original = original or _original_id(part)
    return DeliveryReport(original_message_id=original,
                          recipients=[r for r in recipients if r[0]])


def _status_blocks(part: MIMEPart) -> list[MIMEPart]:
    """The per-message block, then one block per recipient. The email package splits them
    itself, except when the MTA encoded the part (base64, quoted-printable)."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        payload = [payload]
    elif any(block.keys() for block in payload):
        return payload
    else:  # one block without fields: the encoded text as it came
        payload = [str(block.get_payload()) for block in payload]
    text = "".join(payload).encode("ascii", errors="replace")
    encoding = _header(part, "Content-Transfer-Encoding").lower()
    if encoding == "base64":
        try:  # without validate: stray characters are dropped
            text = base64.b64decode(text)
        except ValueError:  # wrong padding: nothing readable
            text = b""
    elif encoding == "quoted-printable":
        text = quopri.decodestring(text)
    text = text.replace(b"\r\n", b"\n")
    return [message_from_bytes(block, _class=MIMEPart, policy=policy.default)
            for block in re.split(rb"\n\s*\n", text) if block.strip()]


def _recipient_status(block: MIMEPart) -> tuple[str, str, str]:
    recipient = _header(block, "Final-Recipient") or _header(block, "Original-Recipient")
    address = recipient.split(";", 1)[-1].strip().strip("<>").lower()
    return (address, _header(block, "Action").lower(), _header(block, "Status").split(" ")[0])


def _original_id(part: MIMEPart) -> str:
    """The Message-ID of the returned message (or of its headers) in a delivery report."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return _first_id(_header(payload[0], "Message-ID")) if payload else ""
    returned = message_from_bytes(part.get_payload(decode=True) or b"", _class=MIMEPart,
                                  policy=policy.default)
    return _first_id(_header(returned, "Message-ID"))


# --- the reply text --------------------------------------------------------------------

def reply_text(message: MIMEPart) -> str:
    """The text the sender wrote in this email, without the history it quotes or the
    signature: from the text/plain body, else from the HTML body made text."""
    plain = message.get_body(("plain",))
    if plain is not None:
        return latest_reply(_decoded(plain))
    html = message.get_body(("html",))
    return latest_reply(html_to_text(_decoded(html))) if html is not None else ""


def latest_reply(text: str) -> str:
    """The newest reply in a text body: up to the first quote header, less its signature."""
    text = _clean(text[:TEXT_LIMIT]).replace("\r\n", "\n").replace("\r", "\n")
    text = _cut_at_attribution(text)
    # A line starting "- word" would end the reply as a signature: a list is no signature.
    text = HYPHEN_ITEM.sub(lambda match: match.group(1) + LIST_MARK, text)
    replies = EmailReplyParser(languages=list(REPLY_LANGUAGES)).read(text).replies
    if not replies or replies[0].headers:  # nothing above the first quote header
        return ""
    # Quoted lines with no header above them (a bottom-posted or inline reply) are the
    # history too: they go, wherever they are.
    lines = [line for line in replies[0].body.replace(LIST_MARK, "-").split("\n")
             if not line.lstrip().startswith(">")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _cut_at_attribution(text: str) -> str:
    """Cut before the line that introduces the first quoted block ("El lun, 23 nov 2026 a
    las 9:00, Mia (<mia@example.com>) escribió:", "Em seg., 23 de nov. de 2026 …
    escreveu:"): the quote headers of languages the library does not know, or writes
    differently. Such a line ends with a colon and names an address or a date."""
    lines = text.split("\n")
    first_quoted = next((i for i, line in enumerate(lines) if line.lstrip().startswith(">")),
                        None)
    if not first_quoted:
        return text
    above = [i for i in range(first_quoted) if lines[i].strip()][-2:]
    # (the end of the line only: the search is quadratic in what it is given)
    if not above or not _attribution(lines[above[-1]]):
        return text
    cut = above[-1]
    if (len(above) == 2 and above[0] == cut - 1 and not DATE_OR_TIME.search(lines[cut][-300:])
            and DATE_OR_TIME.search(lines[above[0]][-300:])
            and not lines[above[0]].rstrip().endswith((".", "!", "?"))):
        cut = above[0]  # an attribution wrapped over two lines: the date, then the address
    return "\n".join(lines[:cut])


def _attribution(line: str) -> bool:
    line = line.rstrip()
    return line.endswith((":", "：")) and bool(ATTRIBUTION.search(line[-300:]))


def html_to_text(html: str) -> str:
    """An HTML body as text, without the quoted history mail clients mark in HTML."""
    if not html.strip():
        return ""
    try:  # as bytes: lxml refuses a str that declares its encoding (<?xml … encoding=…?>)
        tree = lxml.html.document_fromstring(html.encode("utf-8", errors="replace"),
                                             parser=lxml.html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError):
        return ""
    for start in tree.xpath(QUOTE_STARTS)[:1]:
        _remove_from(start)
    for block in tree.xpath(QUOTE_BLOCKS):
        if block.getparent() is not None:
            block.drop_tree()
    return html_text.extract_text(tree)


def _remove_from(element) -> None:
    """Remove an element and everything after it in document order."""
    while element is not None and element.tag not in ("body", "html"):
        parent = element.getparent()
        for later in list(element.itersiblings()):
            parent.remove(later)
        for earlier in list(element.itersiblings(preceding=True))[:1]:
            if earlier.tag == "hr":  # Outlook's rule above its header block
                parent.remove(earlier)
        parent.remove(element)
        element = parent if parent.tag not in ("body", "html") else None


def _decoded(part: MIMEPart) -> str:
    try:
        return part.get_content()
    except (LookupError, ValueError, AssertionError):  # an unknown or wrong charset
        return (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")


# --- attachments -----------------------------------------------------------------------

def _attachment_parts(message: MIMEPart):
    """Parts that are attachments: files, whether marked as such or not. The parts of a
    forwarded message are not looked into; the message itself is one when attached."""
    kind = message.get_content_type()
    if kind.startswith("multipart/"):
        for part in message.get_payload() if isinstance(message.get_payload(), list) else []:
            yield from _attachment_parts(part)
    elif _is_attachment(message, kind):
        yield message


def _is_attachment(part: MIMEPart, kind: str) -> bool:
    disposition = part.get_content_disposition()
    if kind in ("message/delivery-status", "text/rfc822-headers"):
        return False
    if kind.startswith("message/"):
        return disposition == "attachment"
    return (disposition == "attachment" or bool(_filename(part))
            or part.get_content_maintype() != "text")


def _attachment(part: MIMEPart) -> Attachment:
    if isinstance(part.get_payload(), list):  # an attached message, as it came
        size = _message_size(part)
    else:
        size = len(part.get_payload(decode=True) or b"")
    return Attachment(name=_filename(part), content_type=part.get_content_type(), size=size)


def _message_size(part: MIMEPart) -> int:
    try:
        return sum(len(inner.as_bytes()) for inner in part.get_payload())
    except Exception:  # an attached message that cannot be written back: size unknown
        return 0


def _filename(part: MIMEPart) -> str:
    try:
        return str(part.get_filename() or "")
    except Exception:  # an undecodable name is no name
        return ""


def _replace_with_note(part: MIMEPart, attachment: Attachment, *, inside: bool) -> None:
    note = f"[attachment not kept: {attachment.name or 'unnamed'}, {attachment.size} bytes]\n"
    for name in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
                 "Content-ID", "Content-Description", "Content-Location"):
        del part[name]
    part.set_payload(note, charset="us-ascii" if note.isascii() else "utf-8")
    if inside:
        del part["MIME-Version"]  # set_payload adds it; only the message itself carries it
