"""An endpoint's health: failing since its first failed attempt after a success; disabled,
once, when it has failed for outbound.disable_after_days, with an email to every admin."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from service.core.models import User, WebhookEndpoint
from service.core.outbox import queue_email
from service.core.settings import Settings

log = logging.getLogger(__name__)
TEMPLATE = "webhook_endpoint_disabled"


def succeeded(endpoint_id: int) -> None:
    WebhookEndpoint.update(failing_since=None).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_null(False)).execute()


def failed(endpoint_id: int, *, error: str, settings: Settings, now: datetime) -> bool:
    """Note a failed attempt (inside the caller's transaction); True if it disabled the
    endpoint (only the first such call does)."""
    WebhookEndpoint.update(failing_since=now).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.failing_since.is_null()).execute()
    days = settings.outbound.disable_after_days
    cutoff = now - timedelta(days=days)
    reason = f"every attempt failed for {days:g} days; the last: {error}"[:250]
    disabled = WebhookEndpoint.update(active=False, disabled_at=now, disabled_reason=reason).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.active == True,  # noqa: E712
        WebhookEndpoint.failing_since <= cutoff).execute()
    if disabled:
        tell_admins(WebhookEndpoint.get_by_id(endpoint_id), error=error, now=now)
    return bool(disabled)


def tell_admins(endpoint: WebhookEndpoint, *, error: str, now: datetime) -> None:
    log.warning("webhook endpoint %d disabled: failing since %s", endpoint.id,
                endpoint.failing_since.isoformat())
    context = {"endpoint_id": endpoint.id, "url": endpoint.url,
               "description": endpoint.description,
               "failing_since": endpoint.failing_since.strftime("%Y-%m-%d %H:%M"),
               "last_error": error[:300]}
    for admin in User.select().where(User.role == "admin", User.active == True):  # noqa: E712
        queue_email(TEMPLATE, to_address=admin.email, to_name=admin.name, now=now,
                    context=context)
