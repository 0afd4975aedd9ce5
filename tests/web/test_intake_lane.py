"""The intake lane (service.web.intake_lane) answers plain tracking calls and signed webhook
deliveries without Flask's request machinery: for any request, it and the Flask route must
give the same status, body and headers, and store the same events; what the lane does not
answer reaches the route."""

from __future__ import annotations

import gzip
import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import time_machine
from flask import request_started
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from service.core.models import InboundEvent
from service.intake.keys import create_key
from service.web import intake_lane
from tests.web.test_tracking import basic
from tests.web.test_webhooks import signed, svix_signed

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
PATHS = ["/v1/track", "/v1/identify", "/v1/page", "/v1/batch", "/v1/t", "/v1/b", "/v1/group",
         "/v1/nope"]
TYPES = ["application/json", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
         ""]
IDS = st.one_of(st.none(), st.just(""), st.text(max_size=8), st.integers(-3, 3),
                st.lists(st.integers(), max_size=1))


KINDS = st.sampled_from(["track", "identify", "page", "screen", "nope", None])


def messages():
    return st.fixed_dictionaries({"type": KINDS, "messageId": st.uuids().map(str)}, optional={
        "userId": IDS, "anonymousId": IDS,
        "event": st.sampled_from(["Webinar Attended", "Unmapped", "", 5]),
        "traits": st.one_of(st.just({"email": "ada@example.com", "firstName": "Ada"}),
                            st.just({"email": "not an address"}), st.just([])),
        "properties": st.one_of(st.just({"url": "https://x.example/pricing"}), st.just("x")),
        "context": st.one_of(st.just({"traits": {"email": "Bo@Example.com"}}),
                             st.just({"campaign": {"source": "ads", "name": "q4"}}),
                             st.just({"timezone": "Europe/Paris"}), st.just(7)),
        "timestamp": st.sampled_from(["2026-11-28T09:00:00Z", "yesterday", 12]),
        "writeKey": st.sampled_from(["KEY", "wrong"])})


BODIES = st.one_of(
    messages(), st.fixed_dictionaries({"batch": st.lists(messages(), max_size=3)}),
    st.fixed_dictionaries({"batch": st.just({"not": "a list"})}), st.just([1, 2]),
    st.just("not json {"), st.just('{"userId": "u\\u0000", "event": "x"}'))


PLAIN = st.fixed_dictionaries({
    "type": st.sampled_from(["track", "identify", "page"]), "userId": st.text(min_size=1),
    "event": st.just("Webinar Attended"), "messageId": st.uuids().map(str)}, optional={
    "anonymousId": st.text(), "traits": st.just({"email": "ada@example.com"}),
    "context": st.just({"campaign": {"source": "ads"}}), "properties": st.dictionaries(
        st.text(max_size=5), st.one_of(st.text(), st.integers(), st.floats()), max_size=3),
    "timestamp": st.just("2026-11-28T09:00:00Z")})


@st.composite
def requests(draw):
    """Half plain calls the lane should answer, half anything at all."""
    if draw(st.booleans()):
        call = draw(PLAIN)
        path = "/v1/" + call["type"] if draw(st.booleans()) else "/v1/batch"
        body = call if path != "/v1/batch" else {"batch": [call, draw(PLAIN)]}
        return path, json.dumps(body).encode(), {"Content-Type": "application/json"}, "KEY"
    body = draw(BODIES)
    data = body if isinstance(body, str) else json.dumps(body)
    data = data.encode()
    headers = {}
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(TYPES))
    auth = draw(st.sampled_from(["KEY", "wrong", None, "Bearer KEY", "Basic !!!"]))
    if draw(st.booleans()):
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    request_id = draw(st.sampled_from([None, "trace-1", "bad id with spaces"]))
    if request_id:
        headers["X-Request-ID"] = request_id
    query = draw(st.sampled_from(["", "?debug=1"]))
    return draw(st.sampled_from(PATHS)) + query, data, headers, auth


@contextmanager
def no_lane():
    with mock.patch.object(intake_lane, "_plain", return_value=None):
        yield


def answer(app, key: str, path: str, data: bytes, headers: dict, auth: str | None):
    headers = dict(headers)
    if auth == "KEY":
        headers.update(basic(key))
    elif auth:
        headers["Authorization"] = auth.replace("KEY", key)
    return posted(app, path, data.replace(b"KEY", key.encode()), headers)


def posted(app, path: str, data: bytes, headers: dict):
    """(status, body, headers but a new request id, events stored, all headers)."""
    before = InboundEvent.select().count()
    with time_machine.travel(NOW, tick=False):
        response = app.test_client().post(path, data=data, headers=headers)
    stored = [(row.source, row.event, row.partition, row.delivery_id)
              for row in InboundEvent.select().order_by(InboundEvent.id).offset(before)]
    seen = {name: value for name, value in response.headers.items()
            if name != "X-Request-ID" or headers.get("X-Request-ID") == "trace-1"}
    return response.status_code, response.get_data(), seen, stored, response.headers


@pytest.fixture
def key(app, now):
    return create_key("write_key", "website", sources=["website"], actor="test", now=now)[1]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_the_lane_answers_as_the_route_would(app, key, request):
    on_lane = answer(app, key, *request)
    with no_lane():
        on_route = answer(app, key, *request)
    assert on_lane[:4] == on_route[:4]
    event(f"{on_lane[0]}, {'stored' if on_lane[3] else 'none stored'}")
    assert on_lane[4]["X-Request-ID"] and on_route[4]["X-Request-ID"]


def test_a_plain_tracking_call_takes_the_lane_and_anything_else_the_route(app, key):
    routed = []
    body = json.dumps({"userId": "u1", "event": "Webinar Attended"}).encode()
    with request_started.connected_to(lambda sender, **extra: routed.append(sender)):
        plain = answer(app, key, "/v1/track", body, {"Content-Type": "application/json"}, "KEY")
        assert (plain[0], routed) == (200, [])
        bad = answer(app, key, "/v1/track", b"{", {"Content-Type": "application/json"}, "KEY")
        assert bad[0] == 400 and len(routed) == 1
        assert "JSON" in json.loads(bad[1])["error"]["message"]
        wrong = answer(app, key, "/v1/track", body, {}, "wrong")
        assert wrong[0] == 401 and len(routed) == 2
    assert len(plain[3]) == 1 and bad[3] == wrong[3] == []


def test_the_lane_keeps_a_callers_request_id_and_writes_every_header(app, key):
    body = json.dumps({"anonymousId": "a1", "event": "Webinar Attended"}).encode()
    *_, headers = answer(app, key, "/v1/track", body, {"X-Request-ID": "trace-7"}, "KEY")
    assert headers["X-Request-ID"] == "trace-7"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in headers
    secure = app.test_client().post("/v1/track", data=body, base_url="https://lb.example",
                                    headers=basic(key))
    assert secure.status_code == 200 and "max-age" in secure.headers["Strict-Transport-Security"]


# --- signed webhook deliveries ----------------------------------------------------------

@pytest.fixture
def secret(app, now):
    return create_key("webhook", "website", sources=["website"], actor="test", now=now)[1]


EVENTS = st.fixed_dictionaries({
    "email": st.sampled_from(["ada@example.com", "Bo@Example.com", "not an address", None]),
    "type": st.sampled_from(["webinar_attended", "page_view", "nope"])}, optional={
    "occurred_at": st.sampled_from(["2026-11-20T10:00:00Z", "soon", 5]),
    "properties": st.one_of(st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
                            st.just([])),
    "lead": st.one_of(st.just({"first_name": "Ada", "company": "Acme"}), st.just("x"))})
GOOD_EVENTS = st.fixed_dictionaries({
    "email": st.sampled_from(["ada@example.com", "Bo@Example.com"]),
    "type": st.sampled_from(["webinar_attended", "page_view"])}, optional={
    "occurred_at": st.just("2026-11-20T10:00:00Z"),
    "properties": st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    "lead": st.just({"first_name": "Ada", "company": "Acme"})})


WRONG_SECRET = "whsec_" + "QUJD" * 8


@st.composite
def deliveries(draw):
    """Half plain deliveries the lane should answer, half anything at all: a function of the
    source's secret giving (path, body, headers)."""
    plain = draw(st.booleans())
    events = draw(st.lists(GOOD_EVENTS if plain else EVENTS, min_size=1, max_size=3))
    body = events[0] if len(events) == 1 and draw(st.booleans()) else events
    msg_id = f"msg_{draw(st.integers(0, 10**6))}"
    sign = draw(st.sampled_from([signed, svix_signed]))
    path, late, wrong, garbled, dropped = "/webhooks/website", 0, False, None, None
    if not plain:
        path = draw(st.sampled_from([path, path, "/webhooks/nope", path + "?x=1"]))
        late, wrong = draw(st.sampled_from([0, 0, 10])), draw(st.booleans())
        garbled = draw(st.sampled_from([None, b"not json", b"[]", b"{}", b"  "]))
        dropped = draw(st.sampled_from([None, "id", "timestamp", "signature"]))

    def request(secret: str):
        data, headers = sign(WRONG_SECRET if wrong else secret, body, msg_id=msg_id,
                             at=NOW - timedelta(minutes=late))
        if dropped:
            headers = {k: v for k, v in headers.items() if not k.endswith(dropped)}
        return path, garbled if garbled is not None else data, headers
    return request


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(delivery=deliveries())
def test_the_lane_answers_deliveries_as_the_route_would(app, secret, delivery):
    path, data, headers = delivery(secret)
    on_lane = posted(app, path, data, headers)
    with no_lane():
        on_route = posted(app, path, data, headers)
    assert on_lane[:4] == on_route[:4]
    event(f"{on_lane[0]}, {'stored' if on_lane[3] else 'none stored'}")


def test_a_plain_delivery_takes_the_lane(app, secret):
    routed = []
    data, headers = signed(secret, [{"email": "ada@example.com", "type": "webinar_attended"}],
                           msg_id="msg_lane", at=NOW)
    with request_started.connected_to(lambda sender, **extra: routed.append(sender)):
        status, body, _, stored, answered = posted(app, "/webhooks/website", data, headers)
        assert (status, json.loads(body), routed) == (202, {"accepted": 1, "ok": True}, [])
        assert len(stored) == 1 and stored[0][3] == "msg_lane"
        assert "Access-Control-Allow-Origin" not in answered
        again = posted(app, "/webhooks/website", data + b" ", headers)
        assert again[0] == 401 and len(routed) == 1 and again[3] == []
