"""Arbitrary bodies and headers on every intake route: never a 5xx, never an activity from a
request that was not authenticated, and every tracking event accepted is recorded."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from service.core.models import Activity, AnonymousActivity, InboundEvent
from service.intake.keys import create_key
from workers import recorder

ROUTES = ["/f/contact", "/webhooks/website", "/v1/identify", "/v1/track", "/v1/page",
          "/v1/batch", "/v1/screen", "/webhooks/unknown", "/f/unknown",
          "/webhooks/email-events/ses", "/webhooks/email-events/postmark",
          "/webhooks/email-events/mailgun", "/webhooks/email-events/sendgrid",
          "/webhooks/inbound/postmark", "/webhooks/inbound/mailgun",
          "/webhooks/inbound/sendgrid", "/webhooks/inbound/ses", "/webhooks/inbound/unknown"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=5),
    max_leaves=12)
messages = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["identify", "track", "page", "screen", "bogus"]),
    "userId": st.text(max_size=5) | st.integers(), "anonymousId": st.text(max_size=5),
    "event": st.sampled_from(["Webinar Attended", "Trial Started", "", "x"]) | json_values,
    "traits": st.fixed_dictionaries({}, optional={"email": st.emails() | st.text()}) | json_values,
    "context": json_values, "properties": json_values, "timestamp": st.text(max_size=30),
    "sentAt": st.text(max_size=30), "messageId": st.text(max_size=8)})
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    messages.map(lambda m: json.dumps(m).encode()),
    st.lists(messages, max_size=3).map(lambda b: json.dumps({"batch": b}).encode()),
    st.fixed_dictionaries({"email": st.emails() | st.text(), "type": st.text(max_size=20)})
    .map(lambda e: json.dumps(e).encode()))
header_values = st.text(max_size=40).filter(lambda v: "\n" not in v and "\r" not in v)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), body=bodies, gzipped=st.booleans(),
       auth=st.sampled_from(["none", "garbage", "valid"]),
       content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                     "text/plain", ""]),
       extra=st.dictionaries(st.sampled_from(["webhook-id", "webhook-timestamp",
                                              "webhook-signature", "Authorization",
                                              "Content-Length", "Origin"]),
                             header_values, max_size=3))
def test_intake_never_fails_and_never_trusts_strangers(app, route, body, gzipped, auth,
                                                       content_type, extra):
    secret, write_key = app.config["FUZZ_KEYS"]
    headers = {k: v for k, v in extra.items() if k != "Content-Length"}
    if content_type:
        headers["Content-Type"] = content_type
    data = gzip.compress(body) if gzipped else body
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    if auth == "valid" and route.startswith("/webhooks"):
        now = datetime.now(UTC)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None:
            headers.update({"webhook-id": "id-" + str(hash(text)),
                            "webhook-timestamp": str(int(now.timestamp())),
                            "webhook-signature": Webhook(secret).sign("id-" + str(hash(text)),
                                                                      now, text)})
    elif auth == "valid":
        headers["Authorization"] = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    before = counts()
    response = app.test_client().post(route, data=data, headers=headers)
    assert response.status_code < 500, response.text
    authenticated = auth == "valid" and response.status_code < 300
    if route.startswith(("/webhooks", "/v1")) and not authenticated:
        assert counts() == before
    if route.startswith("/v1") and authenticated:
        recorder.drain()
        assert InboundEvent.select().count() == 0, "accepted, so recorded (none set aside)"


def counts() -> tuple[int, int, int]:
    machine = Activity.select().where(Activity.source.startswith("webhook:") |
                                      Activity.source.startswith("tracking:")).count()
    return machine, AnonymousActivity.select().count(), InboundEvent.select().count()


@pytest.fixture(autouse=True)
def fuzz_keys(app, now):
    secret = create_key("webhook", "website", sources=["website"], actor="t", now=now)[1]
    write_key = create_key("write_key", "website", sources=["website"], actor="t", now=now)[1]
    app.config["FUZZ_KEYS"] = (secret, write_key)
