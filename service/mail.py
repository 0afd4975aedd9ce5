"""Rendering emails from email_templates/ and sending them through a transport."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate
from functools import cache, lru_cache
from pathlib import Path

import css_inline
import jinja2

import email_templates

TEMPLATES = Path(email_templates.__path__[0])
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
    autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
    trim_blocks=True, lstrip_blocks=True)
_inliner = css_inline.CSSInliner()


def render(template: str, context: dict) -> tuple[str, str, str]:
    """Return (subject, text, html) for email_templates/<template>/; a template without
    subject.txt takes its subject from context["subject"] (a Jinja string)."""
    if (TEMPLATES / template / "subject.txt").exists():
        subject = _env.get_template(f"{template}/subject.txt").render(context)
    else:
        subject = _subject_template(context["subject"]).render(context)
    text = _env.get_template(f"{template}/body.txt").render(context)
    html = _inliner.inline(_env.get_template(f"{template}/body.html").render(context))
    return " ".join(subject.split()), text, html


@lru_cache(maxsize=256)
def _subject_template(source: str) -> jinja2.Template:
    return _env.from_string(source)


def _header(value: str):
    return value if value.isascii() else Header(value, "utf-8")


def build_message(*, sender: str, sender_name: str, to_address: str, to_name: str,
                  message_id: str, subject: str, text: str, html: str,
                  headers: dict | None = None) -> MIMEMultipart:
    """A text + HTML message. Built with the email.mime classes: several times faster than
    EmailMessage's header registry, which matters when a job sends a batch."""
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((sender_name, sender), charset="utf-8")
    message["To"] = formataddr((to_name, to_address), charset="utf-8")
    message["Subject"] = _header(subject)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.attach(MIMEText(text, "plain", "utf-8"))
    message.attach(MIMEText(html, "html", "utf-8"))
    return message


class TransientError(Exception):
    """The server or the network said "not now": try these messages again later."""


Report = Callable[[int, str | None], None]  # (outbox id, None when accepted or the refusal)


class CaptureTransport:
    """Keeps mail: each message as an .eml file under the data folder."""

    def __init__(self, folder: Path):
        self.folder = folder

    def send(self, messages: list[tuple[int, MIMEMultipart]], report: Report) -> None:
        from .config import write_private

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
    """One connection for a batch of messages. Each message is reported as soon as the
    server has answered it: accepted, or refused for good (5xx). A 4xx answer, a refused
    connection or a timeout raises TransientError for the rest of the batch."""

    def __init__(self, *, host: str, port: int, security: str, username: str, password: str,
                 timeout: float):
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.timeout = username, password, timeout

    def send(self, messages: list[tuple[int, MIMEMultipart]], report: Report) -> None:
        try:
            smtp = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        with smtp:
            for outbox_id, message in messages:
                report(outbox_id, self._send_one(smtp, message))

    def _connect(self) -> smtplib.SMTP:
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
    def _send_one(smtp: smtplib.SMTP, message: MIMEMultipart) -> str | None:
        try:
            smtp.send_message(message)
            return None
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = min(exc.recipients.values())
        except smtplib.SMTPResponseException as exc:
            code, reply = exc.smtp_code, exc.smtp_error
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        if 500 <= code < 600:
            return f"{code} {text}"
        raise TransientError(f"{code} {text}")


def transport(settings: dict):
    if settings["mail.transport"] == "smtp":
        return SMTPTransport(
            host=settings["mail.smtp_host"], port=settings["mail.smtp_port"],
            security=settings["mail.smtp_security"], username=settings["mail.smtp_username"],
            password=settings["mail.smtp_password"], timeout=settings["mail.smtp_timeout"])
    return CaptureTransport(Path(settings["data_dir"]) / "mail")
