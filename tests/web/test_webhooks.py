"""POST /webhooks/<source>: signed with the standardwebhooks library, every failure mode
with its status and the exact number of activities stored. A delivery is accepted (202) once
stored and recorded by the recorder: tests drain it before counting activities."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import svix.webhooks
from standardwebhooks import Webhook

from service.core.db import utcnow
from service.core.models import Activity, Delivery, InboundEvent, IntegrationKey, Lead
from service.intake import keys
from service.intake.keys import create_key
from tests.conftest import post_at_once
from workers import recorder

URL = "/webhooks/website"


@pytest.fixture
def secret(app, now):
    return create_key("webhook", "website", sources=["website"], actor="test", now=now)[1]


def signed(secret: str, body, *, msg_id="msg_1", at=None, raw: bytes | None = None):
    data = raw.decode() if raw is not None else json.dumps(body)
    at = at or datetime.now(UTC)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": Webhook(secret).sign(msg_id, at, data),
               "content-type": "application/json"}
    return data.encode(), headers


def svix_signed(secret: str, body, *, msg_id: str, at=None):
    """As Svix sends it: signed by the svix library, under svix-* header names."""
    data, at = json.dumps(body), at or datetime.now(UTC)
    headers = {"svix-id": msg_id, "svix-timestamp": str(int(at.timestamp())),
               "svix-signature": svix.webhooks.Webhook(secret).sign(msg_id, at, data),
               "content-type": "application/json"}
    return data.encode(), headers


def event(email="ada@example.com", kind="webinar_attended", **extra):
    return {"email": email, "type": kind, "occurred_at": "2026-11-20T10:00:00Z",
            "properties": {"webinar": "Intro"}, "lead": {"first_name": "Ada"}, **extra}


def post(client, data, headers):
    return client.post(URL, data=data, headers=headers)


def test_valid_single_and_list(app, secret):
    client = app.test_client()
    response = post(client, *signed(secret, event()))
    assert response.status_code == 202 and response.json == {"ok": True, "accepted": 1}
    response = post(client, *signed(secret, [event("b@example.com"), event("c@example.com")],
                                     msg_id="msg_2"))
    assert response.status_code == 202 and response.json["accepted"] == 2
    assert recorder.drain() == 3
    assert Activity.select().count() == 3
    ada = Lead.get(Lead.email == "ada@example.com")
    assert ada.first_name == "Ada" and ada.source == "webhook:website"
    activity = ada.activities.get()
    assert activity.type == "webinar_attended" and activity.properties == {"webinar": "Intro"}
    assert activity.occurred_at == datetime(2026, 11, 20, 10, tzinfo=UTC)


def test_svix_headers(app, secret):
    client = app.test_client()
    first = post(client, *svix_signed(secret, event(), msg_id="msg_svix"))
    assert first.status_code == 202 and first.json["accepted"] == 1
    later = datetime.now(UTC) + timedelta(seconds=30)
    again = post(client, *svix_signed(secret, event(), msg_id="msg_svix", at=later))
    assert again.status_code == 202
    data, headers = svix_signed(secret, event(), msg_id="msg_svix_2")
    assert post(client, data.replace(b"ada@", b"eve@"), headers).status_code == 401
    recorder.drain()
    assert Activity.select().count() == 1
    assert [d.delivery_id for d in Delivery.select()] == ["msg_svix"]


@pytest.mark.parametrize("shift", [timedelta(minutes=-6), timedelta(minutes=6)],
                         ids=["stale", "future"])
def test_timestamp_outside_tolerance_is_401(app, secret, shift):
    response = post(app.test_client(),
                    *signed(secret, event(), at=datetime.now(UTC) + shift))
    assert response.status_code == 401
    assert InboundEvent.select().count() == 0


def test_altered_body_is_401(app, secret):
    data, headers = signed(secret, event())
    response = post(app.test_client(), data.replace(b"ada@", b"eve@"), headers)
    assert response.status_code == 401 and InboundEvent.select().count() == 0


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature",
                                     "svix-id", "svix-timestamp", "svix-signature"])
def test_missing_header_is_401(app, secret, missing):
    sign = svix_signed if missing.startswith("svix-") else signed
    data, headers = sign(secret, event(), msg_id="msg_1")
    del headers[missing]
    assert post(app.test_client(), data, headers).status_code == 401
    assert InboundEvent.select().count() == 0


def test_rotated_secret(app, secret, now):
    new = create_key("webhook", "website", sources=["website"], actor="t", now=now)[1]
    client = app.test_client()
    assert post(client, *signed(secret, event(), msg_id="old")).status_code == 202
    assert post(client, *signed(new, event(), msg_id="new")).status_code == 202
    keys.deactivate([IntegrationKey.get(IntegrationKey.secret == secret).id])
    assert post(client, *signed(secret, event(), msg_id="old2")).status_code == 401
    assert post(client, *signed(new, event(), msg_id="new2")).status_code == 202
    recorder.drain()
    assert Activity.select().count() == 3


def test_wrong_secret_and_unknown_source(app, secret):
    other = "whsec_" + "A" * 43 + "="
    assert post(app.test_client(), *signed(other, event())).status_code == 401
    data, headers = signed(secret, event())
    assert app.test_client().post("/webhooks/nope", data=data,
                                  headers=headers).status_code == 404
    assert InboundEvent.select().count() == 0


def test_duplicate_id_sequential(app, secret):
    client = app.test_client()
    first = post(client, *signed(secret, event(), msg_id="dup"))
    later = datetime.now(UTC) + timedelta(seconds=30)
    again = post(client, *signed(secret, event(), msg_id="dup", at=later))
    assert first.status_code == 202 and again.status_code == 202
    recorder.drain()
    assert Activity.select().count() == 1 and Delivery.select().count() == 1
    assert post(client, *signed(secret, event(), msg_id="dup")).status_code == 202
    recorder.drain()
    assert Activity.select().count() == 1 and Delivery.select().count() == 1


def test_duplicate_id_ten_concurrent(secret, live_server):
    data, headers = signed(secret, event(), msg_id="concurrent")
    statuses = post_at_once(live_server + URL, data, headers, 10)
    assert statuses == [202] * 10
    recorder.drain()
    assert Activity.select().count() == 1


def test_oversize_is_413(app, secret):
    big = event(properties={"blob": "x" * (256 * 1024)})
    response = post(app.test_client(), *signed(secret, big))
    assert response.status_code == 413 and InboundEvent.select().count() == 0


@pytest.mark.parametrize("raw, message", [
    (b'{"email": "a@example.com", ', "not valid JSON"),
    (b'[]', "no events"),
    (b'[{"email": "a@example.com", "type": "webinar_attended"}, {"email": "nope"}]',
     "event 1: email is not valid"),
    (b'{"email": "a@example.com", "type": "teleported"}', "type must be one of"),
    (b'{"email": "a@example.com", "type": "page_view", "occurred_at": "yesterday"}',
     "not an ISO 8601 time"),
])
def test_malformed_after_valid_signature_is_400(app, secret, raw, message):
    response = post(app.test_client(), *signed(secret, None, raw=raw))
    assert response.status_code == 400 and message in response.json["error"]["message"]
    assert InboundEvent.select().count() == 0
    recorder.drain()
    assert Activity.select().count() == 0 and Lead.select().count() == 0
    assert Delivery.select().count() == 0, "a rejected delivery can be sent again"


def test_a_lead_field_sent_as_an_object_a_list_or_a_flag_is_not_stored_as_text(app, now):
    secret = create_key("webhook", "website", sources=["website"], actor="t", now=now)[1]
    body = json.dumps({"email": "ada@example.com", "type": "webinar_attended",
                       "occurred_at": "2026-11-27T10:00:00Z",
                       "lead": {"first_name": {"a": 1}, "company": ["Acme"], "title": True,
                                "last_name": "Lovelace", "company_size": 50}})
    headers = {"webhook-id": "msg_obj", "webhook-timestamp": str(int(utcnow().timestamp())),
               "webhook-signature": Webhook(secret).sign("msg_obj", utcnow(), body),
               "content-type": "application/json"}
    assert app.test_client().post("/webhooks/website", data=body,
                                  headers=headers).status_code == 202
    recorder.drain()
    lead = Lead.get(Lead.email == "ada@example.com")
    assert (lead.first_name, lead.company, lead.title) == ("", "", "")
    assert (lead.last_name, lead.company_size) == ("Lovelace", "50")
