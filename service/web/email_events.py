"""POST /webhooks/email-events/<provider>: bounces and complaints from Amazon SES (through
SNS), Postmark, Mailgun and SendGrid, each verified the provider's way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import urllib.request
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from flask import Blueprint, jsonify, request

from service.core.db import utcnow
from service.core.errors import InvalidInput, NotFound
from service.core.runtime import runtime
from service.core.settings import Settings
from service.nurture.bounces import KINDS, ProviderEvent, Signed, apply

from . import bodies
from .responses import error_response

bp = Blueprint("email_events", __name__)
log = logging.getLogger(__name__)
TOLERANCE = 15 * 60
SNS_TOLERANCE = 75 * 60  # SNS retries an HTTP delivery for up to an hour


class Refused(Exception):
    """The request is not from the provider: bad or missing signature or credentials."""


@bp.post("/webhooks/email-events/<provider>")
def receive(provider: str):
    adapter = ADAPTERS.get(provider)
    if adapter is None:
        raise NotFound(f"no email provider named {provider!r} (ses, postmark, mailgun, sendgrid)")
    settings = runtime.settings
    body = bodies.read()
    try:
        events, raw, signed = adapter(body, settings)
    except Refused as exc:
        return error_response(401, "bad_signature", str(exc))
    counts = apply(events, provider=provider, raw=raw, settings=settings, now=utcnow(),
                   signed=signed)
    if counts is None:
        return jsonify(ok=True, duplicate=True, events=dict.fromkeys(KINDS, 0))
    return jsonify(ok=True, events=counts)


def _json(body: bytes | str):
    return bodies.parse(body)


def _digest(*parts: bytes | str) -> str:
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(part.encode() if isinstance(part, str) else part)
    return hashed.hexdigest()


def _fresh(stamp, tolerance: int, what: str) -> None:
    """Refused unless stamp (seconds since the epoch) is within tolerance of now."""
    try:
        seconds = float(stamp)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not abs(time.time() - seconds) <= tolerance:
        raise Refused(f"{what} is more than {tolerance // 60} minutes from now "
                      "(stale or replayed)")


# Amazon SES through SNS -------------------------------------------------------------------

SNS_FIELDS = {"Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn",
                               "Type"),
              "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                           "Token", "TopicArn", "Type")}


def ses(body: bytes, settings: Settings):
    envelope = _json(body)
    if not isinstance(envelope, dict) or envelope.get("Type") not in SNS_FIELDS:
        raise InvalidInput("not an SNS notification")
    if envelope.get("TopicArn") not in settings.email_events.ses_topic_arns:
        raise Refused("SNS topic not allowed (email_events.ses_topic_arns)")
    text = _verify_sns(envelope, settings.email_events.ses_certificate_file)
    _fresh(_sns_time(envelope.get("Timestamp")), SNS_TOLERANCE, "the SNS Timestamp")
    signed = Signed(str(envelope.get("MessageId")), _digest(text))
    if envelope["Type"] == "SubscriptionConfirmation":
        log.warning("SNS subscription to %s: confirm by opening %s", envelope["TopicArn"],
                    envelope.get("SubscribeURL"))
        return [], envelope, signed
    message = _json(str(envelope.get("Message", "")))
    if not isinstance(message, dict):
        raise InvalidInput("SNS Message is not a JSON object")
    return _ses_events(message), envelope, signed


def _sns_time(value) -> float | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()


def _ses_events(message: dict) -> list[ProviderEvent]:
    kind = message.get("notificationType") or message.get("eventType")
    if kind == "Bounce":
        bounce = _object(message.get("bounce"))
        hard = bounce.get("bounceType") == "Permanent"
        kind = "hard_bounce" if hard else "soft_bounce"
        return [ProviderEvent(str(r.get("emailAddress", "")), kind,
                              f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}")
                for r in _list(bounce.get("bouncedRecipients")) if isinstance(r, dict)]
    if kind == "Complaint":
        complaint = _object(message.get("complaint"))
        return [ProviderEvent(str(r.get("emailAddress", "")), "complaint",
                              str(complaint.get("complaintFeedbackType", "")))
                for r in _list(complaint.get("complainedRecipients")) if isinstance(r, dict)]
    return []


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _verify_sns(envelope: dict, certificate_file: str) -> str:
    """The signed text, once its signature verifies."""
    fields = SNS_FIELDS[envelope["Type"]]
    text = "".join(f"{name}\n{envelope[name]}\n" for name in fields
                   if envelope.get(name) is not None)
    digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(envelope.get("SignatureVersion")))
    if digest is None:
        raise Refused("unknown SNS SignatureVersion")
    try:
        signature = base64.b64decode(envelope.get("Signature", ""), validate=True)
        key = _sns_certificate(certificate_file or envelope.get("SigningCertURL", "")).public_key()
        key.verify(signature, text.encode(), padding.PKCS1v15(), digest)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise Refused(f"SNS signature does not verify: {type(exc).__name__}") from None
    return text


@lru_cache(maxsize=16)
def _sns_certificate(source: str) -> x509.Certificate:
    """A configured PEM file, or the certificate AWS publishes (https, amazonaws.com only)."""
    if source and not source.startswith("https://"):
        return x509.load_pem_x509_certificate(Path(source).read_bytes())
    host = urlsplit(source).hostname or ""
    if not (host.startswith("sns.") and host.endswith((".amazonaws.com", ".amazonaws.com.cn"))):
        raise ValueError("SigningCertURL is not an Amazon SNS address")
    with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310 (https, AWS)
        return x509.load_pem_x509_certificate(response.read())


# Postmark ---------------------------------------------------------------------------------

POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "SpamNotification"}
POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "AutoResponder", "Blocked"}


def postmark(body: bytes, settings: Settings):
    token = settings.email_events.postmark_token.get_secret_value()
    auth = request.authorization
    given = auth.password if auth and auth.type == "basic" else ""
    if not token or not hmac.compare_digest(given or "", token):
        raise Refused("Postmark webhooks must send the configured basic-auth password")
    record = _json(body)
    if not isinstance(record, dict):
        raise InvalidInput("expected one Postmark webhook record")
    email, kind = str(record.get("Email", "")), record.get("RecordType")
    if kind == "SpamComplaint":
        return [ProviderEvent(email, "complaint", "spam complaint")], record, None
    if kind == "Bounce":
        bounce = str(record.get("Type", ""))
        hard = bounce in POSTMARK_HARD
        soft = bounce in POSTMARK_SOFT
        kind = "hard_bounce" if hard else "soft_bounce" if soft else "other"
        return [ProviderEvent(email, kind, bounce)], record, None
    return [], record, None


# Mailgun ----------------------------------------------------------------------------------

def mailgun(body: bytes, settings: Settings):
    """Signed: timestamp and token, not the event data; so each token is used once."""
    payload = _json(body)
    if not isinstance(payload, dict):
        raise InvalidInput("expected a Mailgun webhook object")
    signature = payload.get("signature") or {}
    key = settings.email_events.mailgun_signing_key.get_secret_value()
    try:
        stamp, token = str(signature["timestamp"]), str(signature["token"])
        given = str(signature["signature"])
        # Whole seconds only: "1795…e0" would read as a float, and move the token's first
        # characters into the timestamp under the same signature.
        fresh = stamp.isascii() and stamp.isdigit() and abs(time.time() - int(stamp)) <= TOLERANCE
    except (KeyError, TypeError, ValueError):
        raise Refused("missing Mailgun signature") from None
    expected = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    if not key or not fresh or not hmac.compare_digest(expected, given):
        raise Refused("Mailgun signature does not verify, or is older than 15 minutes")
    signed = Signed(stamp + token, _digest(body))  # the signed text, used once
    data = payload.get("event-data") or {}
    if not isinstance(data, dict):
        raise InvalidInput("event-data must be a JSON object")
    event, email = data.get("event"), str(data.get("recipient", ""))
    if event == "complained":
        return [ProviderEvent(email, "complaint", "complained")], payload, signed
    if event == "failed":
        hard = data.get("severity") == "permanent"
        return [ProviderEvent(email, "hard_bounce" if hard else "soft_bounce",
                              str(data.get("reason", "")))], payload, signed
    return [], payload, signed


# SendGrid ---------------------------------------------------------------------------------

def sendgrid(body: bytes, settings: Settings):
    signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    stamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    try:
        key = _sendgrid_key(settings.email_events.sendgrid_public_key)
        key.verify(base64.b64decode(signature, validate=True), stamp.encode() + body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise Refused(f"SendGrid signature does not verify: {type(exc).__name__}") from None
    _fresh(stamp, TOLERANCE, "the SendGrid timestamp")
    digest = _digest(stamp, body)
    events = _json(body)
    if not isinstance(events, list):
        raise InvalidInput("expected a list of SendGrid events")
    found = []
    for event in events:
        if not isinstance(event, dict):
            continue
        email, kind = str(event.get("email", "")), event.get("event")
        if kind == "spamreport":
            found.append(ProviderEvent(email, "complaint", "spam report"))
        elif kind == "bounce":
            hard = event.get("type", "bounce") == "bounce"
            found.append(ProviderEvent(email, "hard_bounce" if hard else "soft_bounce",
                                       str(event.get("reason", ""))))
        elif kind in ("deferred", "dropped"):
            found.append(ProviderEvent(email, "other", f"{kind}: {event.get('reason', '')}"))
    return found, events, Signed(digest, digest)


@lru_cache(maxsize=4)
def _sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    if not text:
        raise ValueError("email_events.sendgrid_public_key is not set")
    data = text.encode() if "BEGIN" in text else base64.b64decode(text)
    key = (serialization.load_pem_public_key(data) if "BEGIN" in text
           else serialization.load_der_public_key(data))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the SendGrid key is not an elliptic-curve key")
    return key


ADAPTERS = {"ses": ses, "postmark": postmark, "mailgun": mailgun, "sendgrid": sendgrid}
