"""The Segment-compatible tracking API, driven by the official Segment Python library
against a live server, and by hand for identity, mapping, auth and gzip. Calls are answered
once stored; a worker records them (run_worker drains them, as a worker's recorder does)."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import timedelta

import pytest
import rudderstack.analytics as rudder_analytics
import segment.analytics as segment_analytics

from service.core.models import (
    Activity,
    AnonymousActivity,
    Delivery,
    Identity,
    InboundEvent,
    Lead,
)
from service.intake.keys import create_key
from tests.conftest import post_at_once, run_worker


@pytest.fixture
def write_key(app, now):
    return create_key("write_key", "website", sources=["website"], actor="test", now=now)[1]


def basic(key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_official_segment_library(write_key, live_server):
    errors = []
    client = segment_analytics.Client(write_key, host=live_server, sync_mode=True,
                                      gzip=True, max_retries=0,
                                      on_error=lambda e, batch: errors.append(e))
    client.page(anonymous_id="anon-1", name="Pricing",
                properties={"url": "https://www.example.com/pricing/teams", "title": "Pricing"})
    client.track(anonymous_id="anon-1", event="Webinar Attended",
                 properties={"webinar": "Scaling sales"})
    client.track(anonymous_id="anon-1", event="Unmapped Thing")
    assert InboundEvent.select().count() == 2, "the unmapped event is not kept"
    run_worker()
    assert AnonymousActivity.select().count() == 2 and Activity.select().count() == 0
    client.identify(user_id="u-42", anonymous_id="anon-1",
                    traits={"email": "Grace@Hopper.example.com", "firstName": "Grace",
                            "company": {"name": "Compiler Works"}})
    client.track(user_id="u-42", event="Demo Video Watched")
    client.flush()
    assert errors == []
    run_worker()
    lead = Lead.get(Lead.email == "grace@hopper.example.com")
    assert (lead.first_name, lead.company) == ("Grace", "Compiler Works")
    kinds = sorted(a.type for a in lead.activities)
    assert kinds == ["demo_video_watched", "pricing_page_view", "webinar_attended"]
    page = lead.activities.where(Activity.type == "pricing_page_view").get()
    assert page.properties["path"] == "/pricing/teams" and page.source == "tracking:website"
    assert AnonymousActivity.select().count() == 0
    assert {(i.kind, i.value) for i in Identity.select()} == {("user_id", "u-42"),
                                                               ("anonymous_id", "anon-1")}


def test_rudderstack_library(write_key, live_server):
    """RudderStack's SDK sends identify's traits only in context.traits; it is a lead all the
    same, its anonymous history joins it, and a message sent again is recorded once."""
    client = rudder_analytics.Client(write_key, host=live_server, sync_mode=True, gzip=True,
                                     max_retries=0)
    client.page(anonymous_id="anon-9", properties={"url": "https://www.example.com/pricing"})
    run_worker()
    assert AnonymousActivity.select().count() == 1 and Lead.select().count() == 0
    for _ in range(2):
        client.identify(user_id="u-9", anonymous_id="anon-9", message_id="rs-identify",
                        traits={"email": "Katherine@Johnson.example.com",
                                "firstName": "Katherine", "company": "Langley"})
        client.track(user_id="u-9", event="Webinar Attended", message_id="rs-webinar")
        run_worker()
    lead = Lead.get(Lead.email == "katherine@johnson.example.com")
    assert (lead.first_name, lead.company) == ("Katherine", "Langley")
    assert sorted(a.type for a in lead.activities) == ["pricing_page_view", "webinar_attended"]
    assert AnonymousActivity.select().count() == 0 and InboundEvent.select().count() == 0
    assert sorted(d.delivery_id for d in Delivery.select()
                  if d.delivery_id.startswith("rs-")) == ["rs-identify", "rs-webinar"]


def test_identify_reads_traits_at_the_top_then_in_context(app, write_key):
    response = app.test_client().post("/v1/identify", headers=basic(write_key), json={
        "userId": "u-3", "traits": {"email": "top@example.com", "lastName": "Top"},
        "context": {"traits": {"email": "context@example.com", "firstName": "Context",
                               "lastName": "Context"}}})
    assert response.status_code == 200
    run_worker()
    lead = Lead.get()
    assert (lead.email, lead.first_name, lead.last_name) == ("top@example.com", "Context",
                                                             "Top")


def test_the_sdks_campaign_context_is_the_leads_first_touch(app, write_key):
    client = app.test_client()
    for name in ("spring-launch", "autumn"):
        response = client.post("/v1/identify", headers=basic(write_key), json={
            "userId": "u-9", "traits": {"email": "utm@example.com"},
            "context": {"campaign": {"name": name, "source": "newsletter", "medium": "email"}}})
        assert response.status_code == 200
        run_worker()
    lead = Lead.get()
    assert (lead.utm_source, lead.utm_campaign) == ("newsletter", "spring-launch")


def test_single_calls_with_write_key_in_body(app, write_key):
    client = app.test_client()
    response = client.post("/v1/track", json={
        "writeKey": write_key, "userId": "u-1", "event": "Trial Started", "messageId": "m-1",
        "context": {"traits": {"email": "linus@kernel.example.com"}}})
    assert response.status_code == 200 and response.json == {"success": True}
    again = client.post("/v1/track", json={
        "writeKey": write_key, "userId": "u-1", "event": "Trial Started", "messageId": "m-1"})
    assert again.status_code == 200
    run_worker()
    assert [a.type for a in Activity.select()] == ["trial_signup"], "messageId is idempotent"
    page = client.post("/v1/page", headers=basic(write_key), json={
        "userId": "u-1", "properties": {"path": "/blog/post"}})
    assert page.status_code == 200
    run_worker()
    assert sorted(a.type for a in Activity.select()) == ["page_view", "trial_signup"]


def test_a_message_sent_many_times_is_recorded_once(write_key, live_server):
    """Repeats inside one batch and five concurrent requests of the same batch: all are
    stored and answered 200; recording claims each messageId once."""
    batch = json.dumps({"batch": [
        {"type": "track", "userId": "u-7", "event": "Trial Started", "messageId": message_id,
         "context": {"traits": {"email": "ada@example.com"}}}
        for message_id in ("r-1", "r-2", "r-1")]}).encode()
    statuses = post_at_once(f"{live_server}/v1/batch", batch, {
        **basic(write_key), "Content-Type": "application/json"}, 5)
    assert statuses == [200] * 5 and InboundEvent.select().count() == 15
    run_worker()
    assert Activity.select().count() == 2 and InboundEvent.select().count() == 0
    assert {d.delivery_id for d in Delivery.select()} == {"r-1", "r-2"}


def test_values_json_cannot_hold_natively_are_kept_exactly(app, write_key):
    """A 70-bit integer: written by the standard library's encoder where the fast one refuses
    it, and read back unchanged. (A lone surrogate is refused at the door: no database can
    store it; see test_intake_hardening.)"""
    body = ('{"userId": "u-9", "event": "Trial Started", "messageId": "big-1", '
            '"properties": {"seats": 1180591620717411303425, "ok": "é"}, '
            '"context": {"traits": {"email": "big@example.com"}}}')
    response = app.test_client().post("/v1/track", data=body, headers={
        **basic(write_key), "Content-Type": "application/json"})
    assert response.status_code == 200
    run_worker()
    [activity] = Activity.select()
    assert activity.properties["seats"] == 2**70 + 1 == activity.raw["properties"]["seats"]
    assert activity.properties["ok"] == "é"


def test_gzip_batch_and_clock_skew(app, write_key):
    body = {"batch": [
        {"type": "identify", "anonymousId": "a-9", "traits": {"email": "k@orbital.example.com"},
         "messageId": "b-1"},
        {"type": "track", "anonymousId": "a-9", "event": "Content Downloaded",
         "timestamp": "2026-11-23T09:00:00Z", "sentAt": "2026-11-23T10:00:00Z",
         "messageId": "b-2"},
        {"type": "screen", "anonymousId": "a-9", "messageId": "b-3"},
    ]}
    response = app.test_client().post(
        "/v1/batch", data=gzip.compress(json.dumps(body).encode()),
        headers={**basic(write_key), "Content-Encoding": "gzip",
                 "Content-Type": "application/json"})
    assert response.status_code == 200
    run_worker()
    activity = Activity.get()
    assert activity.type == "content_download" and activity.lead.email == "k@orbital.example.com"
    skew = activity.created_at - activity.occurred_at
    assert abs(skew.total_seconds() - 3600) < 120, "timestamp moved by now - sentAt"


@pytest.mark.parametrize("headers, body, status", [
    ({}, {"userId": "u", "event": "Trial Started"}, 401),
    (basic("lbwk_wrong"), {"userId": "u", "event": "Trial Started"}, 401),
    ("key", {"event": "Trial Started"}, 400),
    ("key", {"userId": "u"}, 400),
    ("key", {"userId": "u", "event": "Trial Started", "context": "nope"}, 400),
])
def test_bad_requests(app, write_key, headers, body, status):
    headers = basic(write_key) if headers == "key" else headers
    response = app.test_client().post("/v1/track", json=body, headers=headers)
    assert response.status_code == status and "error" in response.json
    assert InboundEvent.select().count() == 0


def test_batch_with_one_bad_message_records_nothing(app, write_key):
    response = app.test_client().post("/v1/batch", headers=basic(write_key), json={"batch": [
        {"type": "track", "userId": "u", "event": "Trial Started",
         "context": {"traits": {"email": "x@example.com"}}},
        {"type": "track", "event": "Trial Started"}]})
    assert response.status_code == 400 and "message 1" in response.json["error"]["message"]
    assert InboundEvent.select().count() == 0


def test_browser_sdk_paths_and_cors(app, write_key):
    client = app.test_client()
    response = client.post("/v1/t", data=json.dumps({
        "writeKey": write_key, "anonymousId": "browser-1", "event": "Webinar Registered",
        "messageId": "js-1"}), content_type="text/plain")
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
    run_worker()
    assert AnonymousActivity.get().type == "webinar_registered"
    assert client.options("/v1/p").status_code == 204


def test_one_batch_applies_in_order_like_single_calls(app, write_key, now):
    """Accepted events are recorded in one pass (leads looked up once, one score update a
    lead), but each message still sees the ones before it."""
    client = app.test_client()

    def at(hours):
        return (now - timedelta(hours=hours)).isoformat()

    def track(message_id, event, hours, **ids):
        return {"type": "track", "messageId": message_id, "event": event,
                "timestamp": at(hours), **ids}

    early = track("early", "Webinar Attended", 9, anonymousId="v-1")
    assert client.post("/v1/track", headers=basic(write_key), json=early).status_code == 200
    run_worker()
    ada = [track("m1", "Content Downloaded", 8, anonymousId="v-1"),
           {"type": "identify", "messageId": "m2", "anonymousId": "v-1",
            "traits": {"email": "ada@example.com", "firstName": "Ada"}},
           track("m3", "Demo Video Watched", 7, anonymousId="v-1")]
    bob = [track("m4", "Trial Started", 6, userId="u-2",
                 context={"traits": {"email": "bob@example.com"}}),
           track("m5", "Webinar Attended", 5, userId="u-2")]
    again = [ada[0], early]  # one repeated inside the batch, one from an earlier call
    response = client.post("/v1/batch", headers=basic(write_key),
                           json={"batch": ada + bob[:1] + again + bob[1:]})
    assert response.status_code == 200
    run_worker()

    def kinds(email):
        return sorted(a.type for a in Lead.get(Lead.email == email).activities)

    assert kinds("ada@example.com") == ["content_download", "demo_video_watched",
                                        "webinar_attended"]
    assert kinds("bob@example.com") == ["trial_signup", "webinar_attended"]
    assert AnonymousActivity.select().count() == 0
    assert Lead.get(Lead.email == "ada@example.com").first_name == "Ada"

    for message in (early, ada[0], ada[2]):  # Ada's history, one call at a time
        single = {**message, "messageId": "single-" + message["messageId"],
                  "anonymousId": None, "userId": "carol",
                  "context": {"traits": {"email": "carol@example.com"}}}
        assert client.post("/v1/track", headers=basic(write_key), json=single).status_code == 200
        run_worker()
    batched, single = (Lead.get(Lead.email == email) for email in
                       ("ada@example.com", "carol@example.com"))
    assert batched.score_log is not None
    assert batched.score_log == pytest.approx(single.score_log, abs=1e-9)
    assert batched.last_activity_at == single.last_activity_at == now - timedelta(hours=7)
