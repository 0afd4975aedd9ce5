"""Intake remembers write keys and webhook secrets for keys.CACHE_SECONDS in each process: a
key deactivated elsewhere (another web process, the CLI) is refused within that time, one
deactivated here at once, and a new webhook secret works at once everywhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from service.core.db import utcnow
from service.core.models import InboundEvent, IntegrationKey
from service.intake import keys
from service.intake.keys import CACHE_SECONDS, create_key
from tests.web.test_tracking import basic
from tests.web.test_webhooks import URL, event, signed

TRACK = {"userId": "u1", "event": "Trial Started"}


@pytest.fixture
def write_key(app, now):
    return create_key("write_key", "website", sources=["website"], actor="t", now=now)[1]


def elsewhere_deactivated(kind: str) -> None:
    """As another process does it: in the database only, nothing forgotten here."""
    IntegrationKey.update(active=False).where(IntegrationKey.kind == kind).execute()


def test_a_write_key_deactivated_elsewhere_is_refused_within_the_cache_window(app, write_key):
    client = app.test_client()
    with time_machine.travel(utcnow(), tick=False) as clock:
        assert client.post("/v1/track", headers=basic(write_key), json=TRACK).status_code == 200
        elsewhere_deactivated("write_key")
        clock.shift(timedelta(seconds=CACHE_SECONDS + 0.5))
        refused = client.post("/v1/track", headers=basic(write_key), json=TRACK)
    assert refused.status_code == 401
    assert InboundEvent.select().count() == 1


def test_a_write_key_deactivated_here_is_refused_at_once(app, write_key):
    client = app.test_client()
    assert client.post("/v1/track", headers=basic(write_key), json=TRACK).status_code == 200
    keys.deactivate([IntegrationKey.get().id])
    assert client.post("/v1/track", headers=basic(write_key), json=TRACK).status_code == 401


def test_a_webhook_secret_deactivated_elsewhere_is_refused_within_the_cache_window(app, now):
    secret = create_key("webhook", "website", sources=["website"], actor="t", now=now)[1]
    client = app.test_client()
    with time_machine.travel(utcnow(), tick=False) as clock:
        data, headers = signed(secret, event(), msg_id="a")
        assert client.post(URL, data=data, headers=headers).status_code == 202
        elsewhere_deactivated("webhook")
        clock.shift(timedelta(seconds=CACHE_SECONDS + 0.5))
        data, headers = signed(secret, event(), msg_id="b")
        assert client.post(URL, data=data, headers=headers).status_code == 401
    assert InboundEvent.select().count() == 1


def test_a_webhook_secret_created_elsewhere_works_at_once(app, now):
    first = create_key("webhook", "website", sources=["website"], actor="t", now=now)[1]
    client = app.test_client()
    data, headers = signed(first, event(), msg_id="a")
    assert client.post(URL, data=data, headers=headers).status_code == 202
    second = "whsec_" + "C" * 43 + "="
    IntegrationKey.create(kind="webhook", source="website", secret=second, hint="whsec_CCCC…",
                          created_by="t", created_at=now)  # another process, nothing forgotten
    data, headers = signed(second, event(), msg_id="b")
    assert client.post(URL, data=data, headers=headers).status_code == 202
    assert InboundEvent.select().count() == 2
