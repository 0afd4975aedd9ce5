"""What a delivery sends: the signed event (Standard Webhooks) or, for a Slack endpoint, a
sentence (service/webhooks/slack.py)."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache

from standardwebhooks import Webhook

from service import events
from service.core.models import WebhookEndpoint, WebhookEvent
from service.core.settings import Settings
from service.webhooks import slack
from service.webhooks.endpoints import signing_secrets

JSON = {"Content-Type": "application/json"}


def compact(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=64)
def signer(secret: str) -> Webhook:
    return Webhook(secret)


def signed(event: WebhookEvent, secrets: list[str], now: datetime) -> tuple[bytes, dict]:
    """The event's envelope and its Standard Webhooks headers: one v1 signature per secret,
    space-separated, so a receiver holding either secret of a rotation verifies it."""
    body = compact(events.envelope(event))
    signatures = " ".join(signer(secret).sign(event.public_id, now, body) for secret in secrets)
    return body.encode(), {**JSON, "webhook-id": event.public_id,
                           "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": signatures}


def message(event: WebhookEvent, endpoint: WebhookEndpoint, *, settings: Settings,
            now: datetime) -> tuple[bytes, dict]:
    """The body and headers of one delivery of `event` to `endpoint`."""
    if endpoint.format == "slack":
        return compact(slack.message(event, settings)).encode(), dict(JSON)
    return signed(event, signing_secrets(endpoint, now), now)
