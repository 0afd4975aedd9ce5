"""The Segment HTTP Tracking API (identify, track, page, batch) so analytics SDKs can send
activity unchanged. Authenticated by a write key: HTTP Basic user name or `writeKey`.
Like Segment, a 200 means the messages are stored; workers record them moments later."""

from __future__ import annotations

import uuid
from datetime import datetime
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request
from werkzeug.datastructures import Authorization

from service.core.addresses import normalise_email
from service.core.db import utcnow
from service.core.errors import InvalidInput
from service.core.runtime import runtime
from service.core.settings import Settings
from service.intake import keys
from service.intake.accept import accept_messages
from service.intake.event import Event, lead_fields

from . import bodies
from .responses import error_response
from .webhooks import parse_time

bp = Blueprint("tracking", __name__)
BODY_LIMIT = 512 * 1024  # Segment's batch limit is 500 KB
SUCCESS = b'{"success":true}\n'  # what jsonify(success=True) writes, written once
IGNORED = ("screen", "group", "alias")
# analytics.js (the browser SDK) posts to one-letter paths.
SHORT = {"i": "identify", "t": "track", "p": "page", "b": "batch", "s": "screen", "g": "group",
         "a": "alias"}


# Browser SDKs post from any site (as text/plain, so no preflight); let them read the
# answer. The write key, not the origin, is the credential.
CORS = (("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
        ("Access-Control-Allow-Methods", "POST, OPTIONS"))
CALLS = ("identify", "track", "page", "batch", *IGNORED)


@bp.after_request
def cors(response):
    for name, value in CORS:
        response.headers[name] = value
    return response


@bp.route("/v1/<kind>", methods=["OPTIONS"])
def preflight(kind: str):
    return "", 204


@bp.post("/v1/<kind>")
def receive(kind: str):
    kind = SHORT.get(kind, kind)
    if kind not in CALLS:
        return error_response(404, "not_found", f"no tracking call named {kind!r}")
    payload = json_object(bodies.inflated(bodies.read(BODY_LIMIT), BODY_LIMIT))
    settings = runtime.settings
    source = authenticate(payload, request.authorization, settings.tracking.sources)
    if source is None:
        return error_response(401, "unauthorized", "a valid write key is required")
    accept_call(kind, payload, source, settings)
    return current_app.response_class(SUCCESS, mimetype="application/json")


def json_object(body: bytes) -> dict:
    payload = bodies.parse(body)
    if not isinstance(payload, dict):
        raise InvalidInput("body must be a JSON object")
    return payload


def authenticate(payload: dict, auth: Authorization | None, sources: list[str]) -> str | None:
    key = auth.username if auth and auth.type == "basic" else payload.get("writeKey")
    source = keys.write_key_source(key) if isinstance(key, str) else None
    return source if source in sources else None


def accept_call(kind: str, payload: dict, source: str, settings: Settings) -> None:
    """Store a call's messages for recording; InvalidInput, storing none, when one is bad."""
    now = utcnow()
    messages = payload.get("batch") if kind == "batch" else [{**payload, "type": kind}]
    if not isinstance(messages, list):
        raise InvalidInput("batch must be a list of messages")
    parsed = [parse_message(m, i, payload, settings, now) for i, m in enumerate(messages)]
    accept_messages([p for p in parsed if p is not None], source=f"tracking:{source}", now=now)


def parse_message(message, index: int, payload: dict, settings: Settings,
                  now: datetime) -> tuple[Event, str] | None:
    where = f"message {index}"
    if not isinstance(message, dict):
        raise InvalidInput(f"{where}: must be a JSON object")
    kind = message.get("type")
    if kind in IGNORED:
        return None
    user_id, anonymous_id = _id(message, "userId"), _id(message, "anonymousId")
    if not (user_id or anonymous_id):
        raise InvalidInput(f"{where}: userId or anonymousId is required")
    context = _object(message, "context", where)
    occurred = _occurred(message, payload, where, now)
    if kind == "identify":
        event = _identify(message, context, where, occurred)
    elif kind == "track":
        event = _track(message, context, where, occurred, settings)
    elif kind == "page":
        event = _page(message, context, where, occurred, settings)
    else:
        raise InvalidInput(f"{where}: type must be identify, track, page, screen, group or alias")
    if event is None:
        return None
    event.user_id, event.anonymous_id, event.raw = user_id, anonymous_id, message
    if isinstance(context.get("timezone"), str):
        event.fields = {**event.fields, **lead_fields({"time_zone": context["timezone"]})}
    event.fields = {**_campaign(context), **event.fields}
    message_id = message.get("messageId")
    return event, str(message_id) if message_id else uuid.uuid4().hex


def _identify(message: dict, context: dict, where: str, occurred: datetime) -> Event:
    """Segment sends traits at the top; RudderStack's SDKs only in `context.traits`."""
    traits = {**_context_traits(context), **_object(message, "traits", where)}
    email = traits.get("email")
    return Event(type="identify", occurred_at=occurred, identify_only=True,
                 email=_email(email, where) if email else None, fields=_lead_fields(traits))


def _track(message, context, where, occurred, settings) -> Event | None:
    name = message.get("event")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}: track needs an event name")
    kind = settings.tracking.events.get(name) or settings.tracking.track_default
    if not kind:
        return None
    properties = {**_object(message, "properties", where), "event": name}
    return _with_email(Event(type=kind, occurred_at=occurred, properties=properties),
                       context, where)


def _page(message, context, where, occurred, settings) -> Event | None:
    properties = _object(message, "properties", where)
    page = context.get("page") if isinstance(context.get("page"), dict) else {}
    url = str(properties.get("url") or page.get("url") or "")
    path = str(properties.get("path") or page.get("path") or urlsplit(url).path or "/")
    kind = next((t for pattern, t in settings.tracking.pages.items()
                 if fnmatchcase(path, pattern)), settings.tracking.page_default)
    if not kind:
        return None
    details = {"url": url, "path": path, "title": properties.get("title") or page.get("title"),
               "referrer": properties.get("referrer") or page.get("referrer"),
               "name": message.get("name")}
    event = Event(type=kind, occurred_at=occurred,
                  properties={k: v for k, v in details.items() if v})
    return _with_email(event, context, where)


def _with_email(event: Event, context: dict, where: str) -> Event:
    traits = _context_traits(context)
    if traits.get("email"):
        event.email = _email(traits["email"], where)
    return event


def _campaign(context: dict) -> dict:
    """The UTM source and campaign the SDKs read from the page's URL (context.campaign)."""
    campaign = context.get("campaign")
    if not isinstance(campaign, dict):
        return {}
    return lead_fields({"utm_source": campaign.get("source"),
                        "utm_campaign": campaign.get("name")})


def _context_traits(context: dict) -> dict:
    traits = context.get("traits")
    return traits if isinstance(traits, dict) else {}


def _occurred(message: dict, payload: dict, where: str, now: datetime) -> datetime:
    """The event time, corrected for the client's clock skew as Segment does."""
    timestamp = parse_time(message.get("timestamp"), where, now)
    sent = message.get("sentAt") or payload.get("sentAt")
    if message.get("timestamp") and sent:
        timestamp += now - parse_time(sent, where, now)
    return min(timestamp, now)


def _lead_fields(traits: dict) -> dict:
    company = traits.get("company")
    address = traits.get("address") if isinstance(traits.get("address"), dict) else {}
    return lead_fields({
        "first_name": traits.get("firstName") or traits.get("first_name"),
        "last_name": traits.get("lastName") or traits.get("last_name"),
        "company": company.get("name") if isinstance(company, dict) else company,
        "title": traits.get("title"), "phone": traits.get("phone"),
        "country": traits.get("country") or address.get("country"),
        "industry": traits.get("industry"),
        "company_size": traits.get("employees") or traits.get("company_size"),
    })


def _email(value, where: str) -> str:
    try:
        return normalise_email(value)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None


def _id(message: dict, name: str) -> str | None:
    value = message.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str | int):
        raise InvalidInput(f"{name} must be a string")
    return str(value)[:200]


def _object(message: dict, name: str, where: str) -> dict:
    value = message.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: {name} must be a JSON object")
    return value
