"""Endpoints: saved (URL checked), their secret made once and shown once, rotated with the
old one still valid for outbound.secret_grace_hours, and deleted with their own
deliveries only; a test event to one; a failed delivery tried again now."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from service import events
from service.core.db import transaction
from service.core.errors import InvalidInput, NotFound
from service.core.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.core.settings import Settings
from service.core.statuses import WebhookStatus
from service.lifecycle import audit
from service.webhooks.addresses import check_url

SECRET_PREFIX = "whsec_"
MAX_DESCRIPTION = 200


def new_secret() -> str:
    """24 random bytes, base64, as Standard Webhooks (and Svix) write secrets."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def clean(data: dict, *, settings: Settings, partial: bool = False) -> dict:
    """The endpoint fields given, checked: url, description, event_types, format, active."""
    fields = {}
    if "url" in data or not partial:
        fields["url"] = check_url(_text(data.get("url"), "url"),
                                  allow_private=settings.outbound.allow_private_urls)
    if "description" in data:
        fields["description"] = _text(data["description"], "description")[:MAX_DESCRIPTION]
    if "event_types" in data or not partial:
        fields["event_types"] = event_types(data.get("event_types") or [])
    if "format" in data:
        if data["format"] not in WebhookEndpoint.FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(WebhookEndpoint.FORMATS)}")
        fields["format"] = data["format"]
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise InvalidInput("active must be true or false")
        fields["active"] = data["active"]
    return fields


def event_types(value) -> list[str]:
    """Known event types, each once, in the catalogue's order; an empty list means all."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("event_types must be a list of event type names")
    unknown = sorted(set(value) - set(events.EVENT_TYPES))
    if unknown:
        raise InvalidInput(f"unknown event type {unknown[0]!r}; known: "
                           f"{', '.join(events.EVENT_TYPES)}")
    return [name for name in events.EVENT_TYPES if name in value]


def _text(value, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidInput(f"{name} must be text")
    return value.strip()


def create(data: dict, *, actor: str, settings: Settings,
           now: datetime) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (the only time the secret is returned)."""
    fields = clean(data, settings=settings)
    secret = new_secret()
    with transaction():
        endpoint = WebhookEndpoint.create(**fields, secret=secret, created_by=actor,
                                          created_at=now, updated_at=now)
        audit(actor, "webhook_endpoint_create", f"webhook_endpoint:{endpoint.id}",
              {"host": host_of(endpoint.url)}, now)
    return endpoint, secret


def update(endpoint_id: int, data: dict, *, actor: str, settings: Settings,
           now: datetime) -> WebhookEndpoint:
    """Change an endpoint's fields; turning it active again clears its disabled state."""
    fields = clean(data, settings=settings, partial=True)
    with transaction():
        endpoint = get(endpoint_id)
        if fields.get("active") and not endpoint.active:
            fields.update(disabled_at=None, disabled_reason="", failing_since=None)
        WebhookEndpoint.update(**fields, updated_at=now).where(
            WebhookEndpoint.id == endpoint_id).execute()
        details = {**fields, "url": host_of(fields["url"])} if "url" in fields else fields
        audit(actor, "webhook_endpoint_update", f"webhook_endpoint:{endpoint_id}", details, now)
    return get(endpoint_id)


def rotate_secret(endpoint_id: int, *, actor: str, settings: Settings,
                  now: datetime) -> tuple[WebhookEndpoint, str]:
    """A new secret; the old one keeps signing beside it for the grace period."""
    secret = new_secret()
    until = now + timedelta(hours=settings.outbound.secret_grace_hours)
    with transaction():
        endpoint = get(endpoint_id)
        WebhookEndpoint.update(secret=secret, previous_secret=endpoint.secret,
                               previous_secret_until=until, updated_at=now).where(
            WebhookEndpoint.id == endpoint_id).execute()
        audit(actor, "webhook_endpoint_rotate", f"webhook_endpoint:{endpoint_id}",
              {"old_secret_valid_until": until.isoformat()}, now)
    return get(endpoint_id), secret


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one
    during its grace period."""
    keep_old = endpoint.previous_secret and endpoint.previous_secret_until and \
        endpoint.previous_secret_until > now
    return [endpoint.secret, endpoint.previous_secret] if keep_old else [endpoint.secret]


def delete(endpoint_id: int, *, actor: str, now: datetime) -> None:
    """The endpoint and its own deliveries; events and other endpoints' deliveries stay."""
    with transaction():
        endpoint = get(endpoint_id)
        WebhookDelivery.delete().where(WebhookDelivery.endpoint == endpoint_id).execute()
        endpoint.delete_instance()
        audit(actor, "webhook_endpoint_delete", f"webhook_endpoint:{endpoint_id}",
              {"host": host_of(endpoint.url)}, now)


def host_of(url: str) -> str:
    """What the audit log keeps of an endpoint's URL: its host. The path and query may be
    the credential (a Slack webhook's is), and sales managers read the audit log."""
    return urlsplit(url).hostname or ""


def get(endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.get_or_none(WebhookEndpoint.id == endpoint_id)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return endpoint


def _not_retried(delivery_id: int) -> str:
    found = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
    if found is None:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    if found.status == WebhookStatus.DELIVERED:
        return f"webhook delivery {delivery_id} was delivered already"
    return f"webhook delivery {delivery_id} is being sent now; see how it went first"


def send_test_event(endpoint_id: int, *, actor: str, now: datetime) -> WebhookDelivery:
    """A webhook.test event delivered to this endpoint only (active or not); it is not in
    the event log that /api/v1/events pages through."""
    with transaction():
        get(endpoint_id)
        event = WebhookEvent.create(public_id=events.new_event_id(), type=events.TEST_EVENT,
                                    occurred_at=now, data={"message": "A test event from "
                                                           "Leadbridge", "sent_by": actor})
        [delivery_id] = events.fan_out(events.TEST_EVENT, [event.id], now=now,
                                       endpoint_ids=[endpoint_id])
    return WebhookDelivery.get_by_id(delivery_id)


def retry_now(delivery_id: int, *, actor: str, now: datetime) -> WebhookDelivery:
    """A failed (or waiting) delivery tried again at once, with a fresh set of attempts;
    never one a sender holds (it would go twice)."""
    with transaction():
        moved = (WebhookDelivery.update(status=WebhookStatus.PENDING, attempts=0,
                                        next_attempt_at=now, claimed_at=None)
                 .where(WebhookDelivery.id == delivery_id,
                        (WebhookDelivery.status == WebhookStatus.FAILED)
                        | ((WebhookDelivery.status == WebhookStatus.PENDING)
                           & WebhookDelivery.claimed_at.is_null())).execute())
        if not moved:
            raise InvalidInput(_not_retried(delivery_id))
        audit(actor, "webhook_retry", f"webhook_delivery:{delivery_id}", {}, now)
        events.collect_delivery(delivery_id)
    return WebhookDelivery.get_by_id(delivery_id)
