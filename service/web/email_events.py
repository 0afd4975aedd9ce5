"""POST /webhooks/email-events/<provider>: bounces and complaints from Amazon SES (through
SNS), Postmark, Mailgun and SendGrid, each verified the provider's way."""

from __future__ import annotations

import base64
import logging
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Blueprint, jsonify, request

from service.core.claims import Signed
from service.core.db import utcnow
from service.core.errors import InvalidInput, NotFound
from service.core.runtime import runtime
from service.core.settings import Settings
from service.nurture.bounces import KINDS, ProviderEvent, apply

from . import bodies, verification
from .responses import error_response
from .verification import TOLERANCE, Refused, digest, fresh

bp = Blueprint("email_events", __name__)
log = logging.getLogger(__name__)


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


# Amazon SES through SNS -------------------------------------------------------------------

def ses(body: bytes, settings: Settings):
    envelope = _json(body)
    signed, message = verification.sns_message(
        envelope, topics=settings.email_events.ses_topic_arns,
        setting="email_events.ses_topic_arns",
        certificate_file=settings.email_events.ses_certificate_file)
    return ([] if message is None else _ses_events(message)), envelope, signed


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


# Postmark ---------------------------------------------------------------------------------

POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "SpamNotification"}
POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "AutoResponder", "Blocked"}


def postmark(body: bytes, settings: Settings):
    verification.basic_password(settings.email_events.postmark_token.get_secret_value(),
                                "Postmark webhooks must send the configured basic-auth password")
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
    try:
        parts = signature["timestamp"], signature["token"], signature["signature"]
    except (KeyError, TypeError, IndexError):
        raise Refused("missing Mailgun signature") from None
    signed = verification.mailgun(
        *parts, key=settings.email_events.mailgun_signing_key.get_secret_value(),
        data=digest(body))  # the signed text, used once
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
    fresh(stamp, TOLERANCE, "the SendGrid timestamp")
    signed = digest(stamp, body)
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
    return found, events, Signed(signed, signed)


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
