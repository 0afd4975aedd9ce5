"""Rendering emails from email_templates/ and sending them through a transport."""

from __future__ import annotations

import binascii
import logging
import queue
import re
import smtplib
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from email.charset import Charset
from email.errors import MessageError
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import formataddr, formatdate
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import css_inline
import jinja2

import email_templates
from service.content import emails as content_emails
from service.core.addresses import mailbox
from service.core.config import write_private
from service.core.text import one_line

if TYPE_CHECKING:  # the settings' checks use this module
    from service.core.settings import Settings

log = logging.getLogger(__name__)
TEMPLATES = Path(email_templates.__path__[0])
# Compiled once per process: the files change only with a new release (and a restart), so
# Jinja need not look at each file's mtime on every email.
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
    autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
    trim_blocks=True, lstrip_blocks=True, auto_reload=False)
_inliner = css_inline.CSSInliner()


def render(template: str, context: dict, *, stored: dict | None = None
           ) -> tuple[str, str, str]:
    """Return (subject, text, html) for email_templates/<template>/; a template without
    subject.txt takes its subject from context["subject"] (a Jinja string). A prospect email
    whose context names a template_version is that version of the template kept in the
    database (service.content), rendered in its sandbox; `stored` is that version's bodies
    when the caller has read them already (a batch reads them all in one query)."""
    if "template_version" in context:
        subject, text, html = content_emails.render(
            template.removeprefix("nurture/"), context["template_version"], context,
            stored=stored)
        return subject, text, _inliner.inline(html)
    if _has_subject_file(template):
        subject = _env.get_template(f"{template}/subject.txt").render(context)
    else:
        subject = _subject_template(context["subject"]).render(context)
    text = _env.get_template(f"{template}/body.txt").render(context)
    html = _inliner.inline(_env.get_template(f"{template}/body.html").render(context))
    return " ".join(subject.split()), text, html


@cache
def _has_subject_file(template: str) -> bool:
    return (TEMPLATES / template / "subject.txt").exists()


@lru_cache(maxsize=256)
def _subject_template(source: str) -> jinja2.Template:
    return _env.from_string(source)


HEADER_LIMIT = 900  # characters of header text: a header line may not pass 998 bytes
NAME_LIMIT = 78  # characters of a display name
WORD_LIMIT = 60  # a longer word cannot be folded after "Subject: " within 78 characters
_UTF8 = Charset("utf-8")
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bBqQ]\?")  # text a reader would decode (RFC 2047)


def header_text(value: object, limit: int = HEADER_LIMIT) -> str:
    """The one way a value becomes email header text: one line of printable characters (no
    CR, LF or other control character, whatever the value holds), at most limit long."""
    return one_line(value)[:limit].rstrip()


def address(name: object, email: object) -> str:
    """A mailbox for From, To or Reply-To: `Name <email>` (quoted as needed), the name
    RFC 2047-encoded when it is not plain ASCII or could be read as an encoded word; the
    email exactly one addr-spec (see mailbox())."""
    name, email = header_text(name, NAME_LIMIT), mailbox(email)
    if name and (not name.isascii() or _ENCODED_WORD.search(name)):
        return f"{_UTF8.header_encode(name)} <{formataddr(('', email))}>"
    return formataddr((name, email))


def words(value: object) -> str | Header:
    """Text for people to read (a subject): as it is when plain ASCII that folds cleanly,
    otherwise RFC 2047-encoded, so a reader shows exactly header_text(value)."""
    text = header_text(value)
    if (text.isascii() and not _ENCODED_WORD.search(text)
            and all(len(word) <= WORD_LIMIT for word in text.split(" "))):
        return text
    return Header(text, "utf-8")


class _Compat32Fast(Compat32):
    """compat32 (the policy email.mime builds for), writing a short one-line ASCII header as
    it is instead of through Header(): folding every header that way was a fifth of the CPU
    a send takes (benchmarks/sending.py). The bytes are the same; any other header is folded
    by compat32 itself."""

    def _fold(self, name, value, sanitize):
        limit = self.max_line_length
        if (isinstance(value, str) and (limit is None or len(name) + 2 + len(value) <= limit)
                and value.isascii() and value.isprintable()):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


_POLICY = _Compat32Fast()
_WIRE = _POLICY.clone(linesep="\r\n")
_NOT_SENT = {"bcc", "resent-bcc"}  # smtplib leaves them out of what it sends


class Message(MIMEMultipart):
    """An email and its envelope: the one address it goes to and the one it comes from,
    set by build_message(), never parsed back from its headers."""

    envelope_to = envelope_from = ""

    def __init__(self, subtype: str, boundary: str):
        super().__init__(subtype, boundary=boundary, policy=_POLICY)


def _body(subtype: str, body: str) -> MIMENonMultipart:
    """The part MIMEText(body, subtype, "utf-8") makes, made with a third of the work: the
    body base64-encoded in one call (MIMEText encodes 57 bytes at a time, in Python), and
    its charset written once instead of set, parsed and set again."""
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.add_header("Content-Transfer-Encoding", "base64")
    encoded = binascii.b2a_base64(body.encode("utf-8"), newline=False).decode("ascii")
    lines = [encoded[at:at + 76] for at in range(0, len(encoded), 76)]
    part.set_payload("\n".join(lines) + "\n" if lines else "")
    return part


def wire_bytes(message: Message) -> bytes:
    """What smtplib.send_message() sends for a message build_message() made: the bytes
    email.generator writes with CRLF line ends, written here directly for that one shape
    (headers, then base64 text parts), since walking it through the generator took a fifth
    of a send's CPU. tests/mail/test_mail_headers.py holds the two to the same bytes."""
    def headers(part) -> bytes:
        return b"".join(_WIRE.fold_binary(name, value) for name, value in part.raw_items()
                        if name.lower() not in _NOT_SENT) + b"\r\n"

    boundary = f"--{message.get_boundary()}".encode("ascii")
    chunks = [headers(message)]
    for part in message.get_payload():
        chunks += [boundary, b"\r\n", headers(part),
                   part.get_payload().replace("\n", "\r\n").encode("ascii"), b"\r\n"]
    chunks += [boundary, b"--\r\n"]
    return b"".join(chunks)


def build_message(*, sender: str, sender_name: str, to_address: str, to_name: str,
                  message_id: str, subject: str, text: str, html: str,
                  headers: dict | None = None) -> Message:
    """A text + HTML message. Built with the email.mime classes: several times faster than
    EmailMessage's header registry, which matters when a job sends a batch. Every header is
    assigned here, through header_text() (the subject through words()), so none can hold a
    line break: extra headers (Reply-To from address(), List-Unsubscribe, …) too."""
    # The boundary is made here, not found by the email package scanning the bodies for a
    # string they do not hold (a tenth of the building time): the bodies are base64 (utf-8
    # parts), whose alphabet has no "-" to start a "--=_…" line.
    message = Message("alternative", boundary=f"=_{uuid.uuid4().hex[:24]}")
    message.envelope_to, message.envelope_from = mailbox(to_address), mailbox(sender)
    message["Subject"] = words(subject)
    values = {"From": address(sender_name, sender), "To": address(to_name, to_address),
              "Date": formatdate(localtime=False), "Message-ID": message_id, **(headers or {})}
    for name, value in values.items():
        message[header_text(name)] = header_text(value)
    message.attach(_body("plain", text))
    message.attach(_body("html", html))
    return message


class TransientError(Exception):
    """The server or the network said "not now": try these messages again later."""


Report = Callable[[int, str | None], None]  # (outbox id, None when accepted or the refusal)


class Batch(Protocol):
    """(outbox id, message) pairs: a list, or a batch that composes each as it is taken."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[int, Message]]: ...


class CaptureTransport:
    """Keeps mail: each message as an .eml file under the data folder."""

    def __init__(self, folder: Path):
        self.folder = folder

    def send(self, messages: Batch, report: Report) -> None:

        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for outbox_id, message in messages:
            # private: the rep's email holds live Accept/Reject links
            write_private(self.folder / f"{outbox_id:08d}.eml", message.as_bytes())
            report(outbox_id, None)


@cache
def _tls_context() -> ssl.SSLContext:
    """Built once: loading the system's CA certificates takes tens of milliseconds."""
    return ssl.create_default_context()


class SMTPTransport:
    """A batch of messages over `connections` SMTP connections (threads, each its own
    smtplib.SMTP, taking the next message as it is free). Each message is reported, in the
    caller's thread, as soon as the server has answered it: accepted, or refused for good
    (5xx). A connection the server refuses (421, refused, a timeout) leaves its messages to
    the others: a server that takes one connection still gets the whole batch. A 4xx answer
    or a connection lost mid-batch stops the batch: TransientError for the rest."""

    def __init__(self, *, host: str, port: int, security: str, username: str, password: str,
                 timeout: float, connections: int = 1):
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.timeout = username, password, timeout
        self.connections = max(1, connections)

    def send(self, messages: Batch, report: Report) -> None:
        count = min(self.connections, len(messages))
        if count <= 1:
            self._send_over_one(messages, report)
        else:
            _Fanout(self, count).run(messages, report)

    def _send_over_one(self, messages: Batch, report: Report) -> None:
        try:
            smtp = self.connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        with smtp:
            for outbox_id, message in messages:
                report(outbox_id, self.send_one(smtp, message))

    def connect(self) -> smtplib.SMTP:
        context = _tls_context() if self.security != "none" else None
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    @staticmethod
    def send_one(smtp: smtplib.SMTP, message: Message) -> str | None:
        """None when accepted; the reason when this message can never go (the server
        refused it for good, or it cannot be written or addressed). It goes to its
        envelope recipient only, whatever its headers say."""
        try:
            smtp.sendmail(message.envelope_from, [message.envelope_to], wire_bytes(message))
            return None
        except smtplib.SMTPRecipientsRefused as exc:
            if not exc.recipients:
                return "no recipient address in the To header"
            code, reply = min(exc.recipients.values())
        except smtplib.SMTPResponseException as exc:
            code, reply = exc.smtp_code, exc.smtp_error
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        except (ValueError, MessageError) as exc:
            with suppress(OSError, smtplib.SMTPException):
                smtp.rset()  # in case the server was told part of it
            return f"cannot be written: {type(exc).__name__}: {exc}"
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        if 500 <= code < 600:
            return f"{code} {text}"
        raise TransientError(f"{code} {text}")


_DONE = object()  # a connection's thread has ended
IN_FLIGHT = 2  # messages per connection sent and not yet reported to the caller, at most


class _Fanout:
    """One batch over several connections. The caller's thread takes each message from the
    batch (which may compose it only then, so composing overlaps sending) and hands it to
    the connections' threads; each thread sends the next one waiting and puts the answer on
    a queue; the caller's thread reports the answers (it alone writes to the database:
    peewee's connection is per thread)."""

    def __init__(self, transport: SMTPTransport, count: int):
        self.transport, self.count = transport, count
        self.work: queue.SimpleQueue = queue.SimpleQueue()  # messages, then None per thread
        self.answers: queue.SimpleQueue = queue.SimpleQueue()
        self.stop = threading.Event()
        # Messages sent and not yet reported: a thread waits for room, so the caller's marks
        # never fall far behind the server (what a killed worker sends twice stays bounded).
        self.room = threading.Semaphore(IN_FLIGHT * count)
        self.connected: list[bool] = []  # one entry per connection opened
        self.refused: list[TransientError] = []  # connections the server would not open
        self.failure: BaseException | None = None  # what stopped the batch
        self.ended = 0

    def run(self, messages: Iterable[tuple[int, Message]], report: Report) -> None:
        threads = [threading.Thread(target=self._connection, daemon=True,
                                    name=f"smtp-{number}") for number in range(self.count)]
        for thread in threads:
            thread.start()
        try:
            for message in messages:
                self.work.put(message)
                self._report(report, block=False)
                if self.stop.is_set() or self.ended == self.count:
                    break
            self._report(report, block=True)
        finally:
            self.stop.set()
            for _ in threads:
                self.work.put(None)
            for thread in threads:
                thread.join()
        self._raise_for_the_rest()

    def _report(self, report: Report, *, block: bool) -> None:
        """Report the answers in; with block, until every thread has ended."""
        if block:
            for _ in range(self.count):
                self.work.put(None)
        while self.ended < self.count:
            try:
                answer = self.answers.get(block=block)
            except queue.Empty:
                return
            if answer is _DONE:
                self.ended += 1
            else:
                report(*answer)
                self.room.release()

    def _connection(self) -> None:
        try:
            try:
                smtp = self.transport.connect()
            except (OSError, smtplib.SMTPException) as exc:
                self.refused.append(TransientError(f"{type(exc).__name__}: {exc}"))
                return
            self.connected.append(True)
            with smtp:
                while self._room():
                    item = self.work.get()
                    if item is None or self.stop.is_set():
                        return
                    self.answers.put((item[0], self.transport.send_one(smtp, item[1])))
        except BaseException as exc:  # raised in the caller's thread by run()
            self.failure = self.failure or exc
            self.stop.set()
        finally:
            self.answers.put(_DONE)

    def _room(self) -> bool:
        """Wait until fewer than IN_FLIGHT per connection await their report; False once the
        batch has stopped."""
        while not self.stop.is_set():
            if self.room.acquire(timeout=0.1):
                return True
        return False

    def _raise_for_the_rest(self) -> None:
        if self.failure is not None:
            raise self.failure
        if not self.connected:
            raise self.refused[0]
        if self.refused:
            log.info("the SMTP server took %d of %d connections: %s",
                     len(self.connected), self.count, self.refused[0])


def transport(settings: Settings):
    mail = settings.mail
    if mail.transport == "smtp":
        return SMTPTransport(
            host=mail.smtp_host, port=mail.smtp_port, security=mail.smtp_security,
            username=mail.smtp_username, password=mail.smtp_password.get_secret_value(),
            timeout=mail.smtp_timeout, connections=mail.connections)
    return CaptureTransport(Path(settings.data_dir) / "mail")
