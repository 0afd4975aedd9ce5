"""POST /webhooks/inbound/<provider>: email sent to the reply address, forwarded by Postmark,
Mailgun, SendGrid Inbound Parse or Amazon SES (through SNS), each verified the provider's way
and turned back into its raw message for service.inbound.receive. Nothing is lost silently:
a request that fails verification (401) or cannot be read as an email (400) is kept as
unmatched with the reason, its payload as the raw message; only a replay of a signature
already used is not kept again."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass

from flask import Blueprint, jsonify, make_response, request

from service.core import ratelimit
from service.core.claims import Signed, first_use
from service.core.db import transaction, utcnow
from service.core.errors import DomainError, InvalidInput
from service.core.runtime import runtime
from service.core.settings import Settings
from service.inbound.receive import Received, receive

from . import bodies, verification
from .rebuilt_mail import Attachment, header, header_block, mime_headers, rebuilt
from .verification import Refused, digest

bp = Blueprint("inbound_mail", __name__)
log = logging.getLogger(__name__)
REFUSED_KEPT = 16 * 1024  # enough to see who sent it and what it was
REFUSED_PER_MINUTE = 60
BASE64_GROWTH = 1.4  # a message sent as base64 inside JSON, with the provider's fields


@dataclass(frozen=True)
class Mail:
    """A provider's payload as one email: its raw bytes and what the provider says of it."""
    raw: bytes
    signed: Signed | None = None  # used once
    refused: str = ""  # verified, but not to be read (a virus)
    authentication: str = ""  # the sender checks that failed, "spf=fail, dkim=fail"


@bp.post("/webhooks/inbound/<provider>")
def receive_mail(provider: str):
    adapter = ADAPTERS.get(provider)
    if adapter is None:
        return _error(404, "not_found", f"no inbound email provider named {provider!r} "
                                        "(postmark, mailgun, sendgrid, ses)")
    if not configured(provider, runtime.settings):
        return _error(404, "not_found", f"inbound email from {provider} is not set up here "
                                        f"(see the README, Replies)")
    body = bodies.read()
    try:
        mail = adapter(body, runtime.settings)
    except Refused as exc:
        return _kept_unverified(provider, body, 401, "bad_signature", str(exc))
    except InvalidInput as exc:
        return _kept_unverified(provider, body, 400, "invalid", f"cannot be read: {exc.message}")
    if mail is None:
        return jsonify(ok=True, id=None, status="subscription_confirmation", duplicate=False)
    try:
        received = _keep_once(provider, mail)
    except DomainError as exc:  # the signature was used before, for other data
        return _error(exc.status, exc.code, exc.message)
    if received is None:
        return jsonify(ok=True, id=None, status=None, duplicate=True)
    return jsonify(ok=True, id=received.email_id, status=received.status,
                   duplicate=received.duplicate)


def _keep_once(provider: str, mail: Mail) -> Received | None:
    """The email received, in one transaction with the claim of its signature; None when the
    signature was claimed before (the provider's retry, or a replay)."""
    now = utcnow()
    with transaction():
        if mail.signed is not None and not first_use(provider, mail.signed, now):
            return None
        return receive(mail.raw, channel=provider, settings=runtime.settings,
                       secret=runtime.secret_key, now=now, refused=mail.refused,
                       authentication=mail.authentication)


def _kept_unverified(provider: str, body: bytes, status: int, code: str, why: str):
    """Kept, cut to REFUSED_KEPT bytes, for the first REFUSED_PER_MINUTE refusals a minute;
    beyond that (someone filling the database) only logged."""
    if not ratelimit.allow(f"inbound-refused:{provider}", limit=REFUSED_PER_MINUTE,
                           strict=True):
        log.warning("inbound %s request refused and not kept (over %d a minute): %s",
                    provider, REFUSED_PER_MINUTE, why)
        return _error(status, code, why)
    received = receive(body[:REFUSED_KEPT], channel=provider, settings=runtime.settings,
                       secret=runtime.secret_key, now=utcnow(), refused=why)
    log.warning("inbound %s request kept as unmatched email %s: %s", provider,
                received.email_id, why)
    return _error(status, code, f"{why} (kept for review)")


def _error(status: int, code: str, message: str):
    return make_response(jsonify(ok=False, error={"code": code, "message": message}), status)


def largest_body() -> int:
    return int(runtime.settings.inbound.max_message_kib * 1024 * BASE64_GROWTH)


bodies.LARGER["inbound_mail.receive_mail"] = largest_body


# Postmark ---------------------------------------------------------------------------------

def postmark(body: bytes, settings: Settings) -> Mail:
    verification.basic_password(settings.inbound.postmark_password.get_secret_value(),
                                "Postmark must send the basic-auth password set in "
                                "inbound.postmark_password")
    record = bodies.parse(body)
    if not isinstance(record, dict):
        raise InvalidInput("expected one Postmark inbound message (a JSON object)")
    headers = _pairs(record.get("Headers"))
    authentication = _failed(spf=header(headers, "Received-SPF"))
    if isinstance(record.get("RawEmail"), str) and record["RawEmail"].strip():
        return Mail(record["RawEmail"].encode(), authentication=authentication)
    postmark_id = _text(record.get("MessageID"))
    message_id = header(headers, "Message-ID") or (f"<{postmark_id}@mtasv.net>"
                                                   if postmark_id else "")
    fields = [("From", _address(record.get("FromFull")) or _text(record.get("From"))),
              ("To", _addresses(record.get("ToFull")) or _text(record.get("To"))),
              ("Cc", _addresses(record.get("CcFull")) or _text(record.get("Cc"))),
              ("Reply-To", _text(record.get("ReplyTo"))),
              ("Subject", _text(record.get("Subject"))), ("Date", _text(record.get("Date"))),
              ("Message-ID", message_id)]
    attachments = tuple(Attachment(_text(a.get("Name")), _text(a.get("ContentType")),
                                   _base64(a.get("Content")))
                        for a in _list(record.get("Attachments")) if isinstance(a, dict))
    raw = rebuilt(fields + headers, text=_text(record.get("TextBody")),
                  html=_text(record.get("HtmlBody")), attachments=attachments)
    return Mail(raw, authentication=authentication)


def _address(full) -> str:
    if not isinstance(full, dict) or not _text(full.get("Email")):
        return ""
    name = _text(full.get("Name")).replace('"', "")
    return f'"{name}" <{_text(full["Email"])}>' if name else _text(full["Email"])


def _addresses(full) -> str:
    return ", ".join(filter(None, map(_address, _list(full))))


# Mailgun ----------------------------------------------------------------------------------

def mailgun(body: bytes, settings: Settings) -> Mail:
    """A route's forward: parsed fields, or the whole message in body-mime."""
    form = request.form
    signed = verification.mailgun(
        form.get("timestamp", ""), form.get("token", ""), form.get("signature", ""),
        key=settings.email_events.mailgun_signing_key.get_secret_value(), data=_form_digest())
    mime = form.get("body-mime", "")
    headers = mime_headers(mime.encode()) if mime else _pairs(_json(form, "message-headers"))
    authentication = _failed(
        spf=form.get("X-Mailgun-Spf") or header(headers, "X-Mailgun-Spf"),
        dkim=form.get("X-Mailgun-Dkim-Check-Result") or header(headers,
                                                               "X-Mailgun-Dkim-Check-Result"))
    if mime:
        return Mail(mime.encode(), signed, authentication=authentication)
    fields = [("From", form.get("from", "")), ("To", form.get("recipient", "")),
              ("Subject", form.get("subject", ""))]
    raw = rebuilt(headers + fields, text=form.get("body-plain", ""),
                  html=form.get("body-html", ""), attachments=_files("attachment-"))
    return Mail(raw, signed, authentication=authentication)


def _form_digest() -> str:
    """What came with a Mailgun signature, whatever the multipart boundary."""
    fields = json.dumps(sorted(request.form.items(multi=True)))
    return digest(fields, *(digest(name, _content(name)) for name in sorted(request.files)))


# SendGrid Inbound Parse -------------------------------------------------------------------

def sendgrid(body: bytes, settings: Settings) -> Mail:
    """Parsed fields (the header block, text, html, attachments), or the whole message in
    `email` ("POST the raw, full MIME message")."""
    verification.basic_password(settings.inbound.sendgrid_password.get_secret_value(),
                                "SendGrid Inbound Parse must send the user:password set in "
                                "its URL (inbound.sendgrid_password)")
    form = request.form
    authentication = _failed(spf=form.get("SPF", ""))
    if form.get("email"):
        return Mail(form["email"].encode(), authentication=authentication)
    headers = header_block(form.get("headers", ""))
    fields = [("From", form.get("from", "")), ("To", form.get("to", "")),
              ("Cc", form.get("cc", "")), ("Subject", form.get("subject", ""))]
    info = _object(_json(form, "attachment-info"))
    attachments = tuple(Attachment(_text(_object(info.get(name)).get("filename")) or a.name,
                                   _text(_object(info.get(name)).get("type")) or a.content_type,
                                   a.data)
                        for name, a in zip(_file_names("attachment"), _files("attachment"),
                                           strict=True))
    raw = rebuilt(headers + fields, text=form.get("text", ""), html=form.get("html", ""),
                  attachments=attachments)
    return Mail(raw, authentication=authentication)


# Amazon SES through SNS -------------------------------------------------------------------

def ses(body: bytes, settings: Settings) -> Mail | None:
    """A receipt rule's SNS action: the message in the notification's content."""
    envelope = bodies.parse(body)
    signed, message = verification.sns_message(
        envelope, topics=settings.inbound.ses_topic_arns, setting="inbound.ses_topic_arns",
        certificate_file=settings.email_events.ses_certificate_file)
    if message is None:
        return None
    if message.get("notificationType") != "Received":
        raise InvalidInput("the SNS Message is not an SES notification of a received email")
    receipt = _object(message.get("receipt"))
    content = message.get("content")
    if not isinstance(content, str) or not content:
        raise InvalidInput("the notification holds no content: the receipt rule's action "
                           "must be SNS (with S3 the message is in the bucket)")
    if _object(receipt.get("action")).get("encoding") == "BASE64":
        raw = _base64(content)
    else:
        raw = content.encode()
    verdict = {name: _text(_object(receipt.get(f"{name}Verdict")).get("status")).upper()
               for name in ("spf", "dkim", "dmarc", "virus")}
    failed = [name for name in ("spf", "dkim", "dmarc") if verdict[name] == "FAIL"]
    if "dmarc" not in failed and len(failed) < 2:
        failed = []
    return Mail(raw, signed, refused="virus" if verdict["virus"] == "FAIL" else "",
                authentication=", ".join(f"{name}=fail" for name in failed))


# Reading the payloads ---------------------------------------------------------------------

def _failed(**checks: str) -> str:
    """The sender checks a provider reports as failed (a soft fail too): "spf=fail"."""
    return ", ".join(f"{name}=fail" for name, result in checks.items()
                     if str(result).strip().lower().startswith(("fail", "softfail")))


def _pairs(value) -> list[tuple[str, str]]:
    """Headers as [{"Name", "Value"}] (Postmark) or [[name, value]] (Mailgun)."""
    pairs = []
    for item in _list(value):
        if isinstance(item, dict):
            item = (item.get("Name"), item.get("Value"))
        if isinstance(item, list | tuple) and len(item) == 2 and all(
                isinstance(part, str) for part in item):
            pairs.append((item[0], item[1]))
    return pairs


def _json(form, name: str):
    """A form field holding JSON; InvalidInput saying what is wrong with it."""
    try:
        return bodies.parse(form.get(name) or "null")
    except InvalidInput as exc:
        raise InvalidInput(f"{name}: {exc.message}") from None


def _files(prefix: str) -> tuple[Attachment, ...]:
    return tuple(Attachment(request.files[name].filename or name,
                            request.files[name].mimetype, _content(name))
                 for name in _file_names(prefix))


def _content(name: str) -> bytes:
    stream = request.files[name].stream
    stream.seek(0)
    return stream.read()


def _file_names(prefix: str) -> list[str]:
    """attachment-1, attachment-2… (or attachment1…) in their order."""
    names = [name for name in request.files if name.startswith(prefix)
             and name[len(prefix):].isdigit()]
    return sorted(names, key=lambda name: int(name[len(prefix):]))


def _base64(value) -> bytes:
    try:
        return base64.b64decode("".join(_text(value).split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("an attachment or the content is not valid base64") from None


def _text(value) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


ADAPTERS = {"postmark": postmark, "mailgun": mailgun, "sendgrid": sendgrid, "ses": ses}


def configured(provider: str, settings: Settings) -> bool:
    """A provider's route answers only once its credentials are set: until then nothing
    is read or kept from it."""
    return bool({"postmark": settings.inbound.postmark_password.get_secret_value(),
                 "mailgun": settings.email_events.mailgun_signing_key.get_secret_value(),
                 "sendgrid": settings.inbound.sendgrid_password.get_secret_value(),
                 "ses": settings.inbound.ses_topic_arns}[provider])
