"""POST /webhooks/<source>: Standard Webhooks signatures, idempotent on webhook-id. Svix,
which sends most Standard Webhooks, names the same headers svix-id, svix-timestamp and
svix-signature; either naming is read. Like a tracking call, a delivery is answered once its
events are stored; workers record them moments later, each event once however often the
delivery comes (service.intake.accept.accept_delivery)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, request
from standardwebhooks import Webhook

from service.core.addresses import normalise_email
from service.core.db import utcnow
from service.core.errors import InvalidInput, NotFound
from service.core.runtime import runtime
from service.core.settings import Settings
from service.intake import keys
from service.intake.accept import accept_delivery
from service.intake.event import Event, lead_fields

from . import bodies
from .responses import error_response

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/<source>")
def receive(source: str):
    settings = runtime.settings
    if source not in settings.webhooks.sources:
        raise NotFound(f"no webhook source named {source!r}")
    body = bodies.read(settings.intake.max_body_kib * 1024)
    signature = signed_headers(request.headers)
    if not authentic(body, signature, source):
        return error_response(401, "bad_signature",
                              "missing, stale or invalid webhook signature")
    accepted = accept_signed(source, body, signature, settings)
    return current_app.response_class(accepted_answer(accepted), 202,
                                      mimetype="application/json")


def accept_signed(source: str, body: bytes, signature: dict[str, str],
                  settings: Settings) -> int:
    """Store an authentic delivery's events for recording; InvalidInput, storing none, when
    one is bad."""
    now = utcnow()
    events = parse_events(body, settings.intake.activity_types, now)
    return accept_delivery(events, delivery_id=signature["webhook-id"],
                           source=f"webhook:{source}", now=now)


def accepted_answer(accepted: int) -> bytes:
    """What jsonify(accepted=n, ok=True) writes, written directly."""
    return f'{{"accepted":{accepted},"ok":true}}\n'.encode()


def signed_headers(headers) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature, each also under its svix- name."""
    return {f"webhook-{name}": headers.get(f"webhook-{name}") or headers.get(f"svix-{name}", "")
            for name in ("id", "timestamp", "signature")}


def authentic(body: bytes, signature: dict[str, str], source: str) -> bool:
    """Signed by an active secret of the source. The secrets are remembered a few seconds
    (keys.CACHE_SECONDS); a signature they do not verify is checked again against the
    database's, so a secret created in another process works at once."""
    remembered = keys.webhook_secrets(source)
    if verified(body, signature, remembered):
        return True
    current = keys.webhook_secrets(source, fresh=True)
    return current != remembered and verified(body, signature, current)


def verified(body: bytes, signature: dict[str, str], secrets: list[str]) -> bool:
    for secret in secrets:
        try:
            Webhook(secret).verify(body, signature, json_parse=False)
            return True
        except Exception:  # the library raises several types for malformed headers
            continue
    return False


def parse_events(body: bytes, types: list[str], now: datetime) -> list[Event]:
    payload = bodies.parse(body)
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise InvalidInput("no events in the body")
    return [parse_event(item, i, types, now) for i, item in enumerate(items)]


def parse_event(item, index: int, types: list[str], now: datetime) -> Event:
    where = f"event {index}"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: must be a JSON object")
    try:
        email = normalise_email(item.get("email"))
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None
    if item.get("type") not in types:
        raise InvalidInput(f"{where}: type must be one of {', '.join(types)}")
    properties, lead = item.get("properties", {}), item.get("lead", {})
    if not isinstance(properties, dict) or not isinstance(lead, dict):
        raise InvalidInput(f"{where}: properties and lead must be JSON objects")
    return Event(type=item["type"], occurred_at=parse_time(item.get("occurred_at"), where, now),
                 properties=properties, raw=item, email=email, fields=lead_fields(lead))


def parse_time(value, where: str, now: datetime) -> datetime:
    if value in (None, ""):
        return now
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{where}: {value!r} is not an ISO 8601 time") from None
    return min(moment, now)
