"""How an email provider's request is known to be the provider's, for each of its routes
(bounces and complaints, inbound mail): a basic-auth password, Mailgun's signature of a
timestamp and a single-use token, Amazon SNS's signature of its envelope, and freshness."""

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
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from flask import request

from service.core.claims import Signed
from service.core.errors import InvalidInput

from . import bodies

TOLERANCE = 15 * 60
SNS_TOLERANCE = 75 * 60  # SNS retries an HTTP delivery for up to an hour
log = logging.getLogger(__name__)


class Refused(Exception):
    """The request is not from the provider: bad or missing signature or credentials."""


def digest(*parts: bytes | str) -> str:
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(part.encode() if isinstance(part, str) else part)
    return hashed.hexdigest()


def fresh(stamp, tolerance: int, what: str) -> None:
    """Refused unless stamp (seconds since the epoch) is within tolerance of now."""
    try:
        seconds = float(stamp)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not abs(time.time() - seconds) <= tolerance:
        raise Refused(f"{what} is more than {tolerance // 60} minutes from now "
                      "(stale or replayed)")


def basic_password(password: str, message: str) -> None:
    """Refused unless the request's basic auth carries password (any user name)."""
    auth = request.authorization
    given = auth.password if auth and auth.type == "basic" else ""
    if not password or not hmac.compare_digest(_bytes(given or ""), _bytes(password)):
        raise Refused(message)


# Mailgun ----------------------------------------------------------------------------------

def mailgun(stamp, token, signature, *, key: str, data: str) -> Signed:
    """Mailgun signs its timestamp and token, not the data: so the token is used once (the
    Signed key), and data (a digest of what came with it) tells a retry from a replay."""
    stamp, token, given = str(stamp), str(token), str(signature)
    # Whole seconds only: "1795…e0" would read as a float, and move the token's first
    # characters into the timestamp under the same signature.
    recent = stamp.isascii() and stamp.isdigit() and abs(time.time() - int(stamp)) <= TOLERANCE
    expected = hmac.new(key.encode(), (stamp + token).encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()
    if not key or not recent or not hmac.compare_digest(expected.encode(), _bytes(given)):
        raise Refused("Mailgun signature does not verify, or is older than 15 minutes")
    return Signed(stamp + token, data)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# Amazon SNS -------------------------------------------------------------------------------

SNS_FIELDS = {"Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn",
                               "Type"),
              "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                           "Token", "TopicArn", "Type")}


def sns(envelope, *, topics: list[str], setting: str, certificate_file: str) -> Signed:
    """An SNS envelope from an allowed topic, signed by SNS, fresh: its MessageId is the
    single-use key."""
    if not isinstance(envelope, dict) or envelope.get("Type") not in SNS_FIELDS:
        raise InvalidInput("not an SNS notification")
    if envelope.get("TopicArn") not in topics:
        raise Refused(f"SNS topic not allowed ({setting})")
    text = _verify_sns(envelope, certificate_file)
    fresh(_sns_time(envelope.get("Timestamp")), SNS_TOLERANCE, "the SNS Timestamp")
    return Signed(str(envelope.get("MessageId")), digest(text))


def sns_message(envelope, *, topics: list[str], setting: str,
                certificate_file: str) -> tuple[Signed, dict | None]:
    """sns(), then the notification's Message, a JSON object; None for a subscription
    confirmation, which is logged with the address that confirms it."""
    signed = sns(envelope, topics=topics, setting=setting, certificate_file=certificate_file)
    if envelope["Type"] == "SubscriptionConfirmation":
        log.warning("SNS subscription to %s: confirm by opening %s", envelope["TopicArn"],
                    envelope.get("SubscribeURL"))
        return signed, None
    message = bodies.parse(str(envelope.get("Message", "")))
    if not isinstance(message, dict):
        raise InvalidInput("the SNS Message is not a JSON object")
    return signed, message


def _sns_time(value) -> float | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()


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
        key = _sns_key(certificate_file, str(envelope.get("SigningCertURL", "")))
        key.verify(signature, text.encode(), padding.PKCS1v15(), digest)
    except (InvalidSignature, ValueError, TypeError, OSError) as exc:
        raise Refused(f"SNS signature does not verify: {type(exc).__name__}") from None
    return text


def _sns_key(certificate_file: str, url: str):
    """The configured PEM file (a setting, never a path from the request), else the
    certificate AWS publishes at the envelope's https SigningCertURL."""
    if certificate_file:
        return _pem_file(certificate_file).public_key()
    return _sns_certificate(url if url.startswith("https://") else "").public_key()


@lru_cache(maxsize=4)
def _pem_file(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@lru_cache(maxsize=16)
def _sns_certificate(source: str) -> x509.Certificate:
    """The certificate AWS publishes (https, sns.*.amazonaws.com only)."""
    host = urlsplit(source).hostname or ""
    if not (host.startswith("sns.") and host.endswith((".amazonaws.com", ".amazonaws.com.cn"))):
        raise ValueError("SigningCertURL is not an Amazon SNS address")
    with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310 (https, AWS)
        return x509.load_pem_x509_certificate(response.read())
