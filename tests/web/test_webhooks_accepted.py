"""Signed webhooks are accepted, then recorded: a delivery is answered 202 once its events are
stored, the recorder records them, and each delivery's events are recorded once however often
it comes, before or after recording. Signed by the real standardwebhooks and svix libraries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.core.models import Activity, Delivery, InboundEvent, Lead
from service.intake.accept import event_delivery_id
from service.intake.keys import create_key
from tests.web.test_webhooks import URL, event, signed, svix_signed
from workers import recorder


@pytest.fixture
def secret(app, now):
    return create_key("webhook", "website", sources=["website"], actor="test", now=now)[1]


def deliver(app, data, headers):
    return app.test_client().post(URL, data=data, headers=headers)


def recorded_emails() -> list[str]:
    return sorted(a.lead.email for a in Activity.select(Activity, Lead).join(Lead))


@pytest.mark.parametrize("sign", [signed, svix_signed], ids=["standardwebhooks", "svix"])
def test_a_delivery_is_answered_once_stored_and_recorded_by_the_recorder(app, secret, sign):
    response = deliver(app, *sign(secret, event(), msg_id="msg_a"))
    assert response.status_code == 202
    assert response.json == {"ok": True, "accepted": 1}
    assert InboundEvent.select().count() == 1 and Activity.select().count() == 0
    stored = InboundEvent.get()
    assert (stored.source, stored.delivery_id) == ("webhook:website", "msg_a")
    assert recorder.drain() == 1
    assert recorded_emails() == ["ada@example.com"] and InboundEvent.select().count() == 0
    ada = Lead.get(Lead.email == "ada@example.com")
    assert ada.first_name == "Ada" and ada.source == "webhook:website"


@pytest.mark.parametrize("sign", [signed, svix_signed], ids=["standardwebhooks", "svix"])
def test_a_redelivery_is_recorded_once_before_or_after_recording(app, secret, sign):
    later = datetime.now(UTC) + timedelta(seconds=20)
    assert deliver(app, *sign(secret, event(), msg_id="msg_r")).status_code == 202
    assert deliver(app, *sign(secret, event(), msg_id="msg_r", at=later)).status_code == 202
    recorder.drain()
    assert recorded_emails() == ["ada@example.com"]
    again = deliver(app, *sign(secret, event(), msg_id="msg_r"))
    assert again.status_code == 202 and again.json["accepted"] == 1
    assert recorder.drain() == 1, "taken, and dropped as a duplicate"
    assert recorded_emails() == ["ada@example.com"]
    assert [d.delivery_id for d in Delivery.select()] == ["msg_r"]


def test_a_delivery_of_several_events_is_recorded_whole_and_once(app, secret):
    events = [event("a@example.com"), event("b@example.com"), event("a@example.com",
                                                                    kind="page_view")]
    first = deliver(app, *signed(secret, events, msg_id="msg_m"))
    assert first.status_code == 202 and first.json["accepted"] == 3
    assert deliver(app, *signed(secret, events, msg_id="msg_m")).status_code == 202
    recorder.drain()
    kinds = sorted((a.lead.email, a.type) for a in Activity.select(Activity, Lead).join(Lead))
    assert kinds == [("a@example.com", "page_view"), ("a@example.com", "webinar_attended"),
                     ("b@example.com", "webinar_attended")]
    assert sorted(d.delivery_id for d in Delivery.select()) == ["msg_m", "msg_m/1", "msg_m/2"]
    deliver(app, *signed(secret, events, msg_id="msg_m"))
    recorder.drain()
    assert Activity.select().count() == 3


def test_a_long_webhook_id_keeps_one_id_per_event(app, secret):
    long_id = "msg_" + "x" * 300
    events = [event(f"p{n}@example.com") for n in range(12)]
    assert deliver(app, *signed(secret, events, msg_id=long_id)).status_code == 202
    assert deliver(app, *signed(secret, events, msg_id=long_id)).status_code == 202
    recorder.drain()
    assert Activity.select().count() == 12
    ids = [d.delivery_id for d in Delivery.select()]
    assert len(set(ids)) == 12 and all(len(i) == 200 for i in ids)
    assert sorted(ids) == sorted(event_delivery_id(long_id, n) for n in range(12))
    assert event_delivery_id(long_id, 11).endswith("x/11")


def test_a_bad_signature_stores_nothing(app, secret):
    data, headers = svix_signed(secret, event(), msg_id="msg_b")
    forged = deliver(app, data.replace(b"ada@", b"eve@"), headers)
    assert forged.status_code == 401 and forged.json["error"]["code"] == "bad_signature"
    other = "whsec_" + "B" * 43 + "="
    assert deliver(app, *signed(other, event(), msg_id="msg_c")).status_code == 401
    assert InboundEvent.select().count() == 0
    recorder.drain()
    assert Activity.select().count() == 0 and Delivery.select().count() == 0
    assert deliver(app, data, headers).status_code == 202, "the id is still free"


texts = st.text(max_size=8)
emails = st.sampled_from(["ada@example.com", "b@example.com", "Ada@Example.com "]) | texts
events = st.fixed_dictionaries(
    {"email": emails, "type": st.sampled_from(["webinar_attended", "page_view", "teleported"])},
    optional={"occurred_at": st.sampled_from(["2026-11-20T10:00:00Z", "yesterday", "", None])
              | texts,
              "properties": st.dictionaries(texts, texts, max_size=2) | texts,
              "lead": st.dictionaries(st.sampled_from(["first_name", "company", "x"]),
                                      texts | st.integers(), max_size=2) | st.lists(texts)})
payloads = events | st.lists(events | texts, max_size=4) | texts | st.integers()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads, redeliver=st.booleans())
def test_any_signed_body_is_stored_whole_or_not_at_all(app, secret, payload, redeliver):
    before = Activity.select().count()
    msg_id = f"msg_h{Delivery.select().count()}_{before}_{InboundEvent.select().count()}"
    data, headers = signed(secret, None, raw=json.dumps(payload).encode(), msg_id=msg_id)
    response = deliver(app, data, headers)
    assert response.status_code in (202, 400), response.text
    items = payload if isinstance(payload, list) else [payload]
    if response.status_code == 400:
        assert InboundEvent.select().count() == 0, "nothing half stored"
        assert response.json["error"]["message"]
        return
    assert response.json["accepted"] == len(items) == InboundEvent.select().count()
    if redeliver:
        assert deliver(app, data, headers).status_code == 202
    assert recorder.drain() == len(items) * (2 if redeliver else 1)
    assert Activity.select().count() - before == len(items)
    assert InboundEvent.select().count() == 0
