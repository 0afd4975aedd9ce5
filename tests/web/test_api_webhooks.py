"""/api/v1/webhook-endpoints and /api/v1/webhook-deliveries: managed by keys whose owner is
an active admin; the secret shown once; rotation; the delivery log; test events; retries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import AuditEvent, WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.core.statuses import WebhookStatus
from service.intake.keys import create_key
from tests.conftest import PASSWORD, queued_job_ids
from tests.factories import new_lead

HOOK = "https://127.0.0.1:9/hooks/leadbridge"


@pytest.fixture
def app(make_app):
    return make_app(**{"outbound.allow_private_urls": True})


def client_for(app, owner: str):
    key = create_key("api", "crm", sources=["crm"], actor="t", now=utcnow(),
                     owner=owner)[1]
    client = app.test_client()

    def call(method, path, **kwargs):
        return client.open(f"/api/v1{path}", method=method,
                           headers={"Authorization": f"Bearer {key}"}, **kwargs)

    return call


@pytest.fixture
def admin_api(app, now):
    create_user("ops@example.com", role="admin", password=PASSWORD, now=now)
    return client_for(app, "ops@example.com")


def test_only_an_active_admins_key_manages_endpoints(app, admin_api, now):
    marketer = create_user("mia@example.com", role="marketer", password=PASSWORD, now=now)
    as_marketer = client_for(app, marketer.email)
    made = admin_api("POST", "/webhook-endpoints", json={"url": HOOK})
    assert made.status_code == 201
    for method, path in (("GET", "/webhook-endpoints"), ("POST", "/webhook-endpoints"),
                         ("GET", f"/webhook-endpoints/{made.json['id']}"),
                         ("PATCH", f"/webhook-endpoints/{made.json['id']}"),
                         ("DELETE", f"/webhook-endpoints/{made.json['id']}"),
                         ("POST", f"/webhook-endpoints/{made.json['id']}/rotate-secret"),
                         ("POST", f"/webhook-endpoints/{made.json['id']}/test"),
                         ("GET", f"/webhook-endpoints/{made.json['id']}/deliveries"),
                         ("POST", "/webhook-deliveries/1/retry")):
        refused = as_marketer(method, path, json={"url": HOOK})
        assert refused.status_code == 403, (method, path)
        assert refused.json["error"]["code"] == "forbidden"
        assert "mia@example.com" in refused.json["error"]["message"]
        assert "admin" in refused.json["error"]["message"]
    assert as_marketer("GET", "/events").status_code == 200, "the event log is for any key"
    unknown_owner = client_for(app, "nobody@example.com")
    assert unknown_owner("GET", "/webhook-endpoints").status_code == 403
    from service.core.models import User

    User.update(active=False).where(User.email == "ops@example.com").execute()
    assert admin_api("GET", "/webhook-endpoints").status_code == 403, "inactive admin"
    assert WebhookEndpoint.select().count() == 1


def test_endpoint_life_secret_shown_once(admin_api, now):
    made = admin_api("POST", "/webhook-endpoints", json={
        "url": HOOK, "description": "CRM", "event_types": ["lead.sql", "lead.created"]})
    assert made.status_code == 201
    secret = made.json["secret"]
    assert secret.startswith("whsec_") and secret == WebhookEndpoint.get().secret
    assert made.json["event_types"] == ["lead.created", "lead.sql"]
    endpoint_id = made.json["id"]
    listed = admin_api("GET", "/webhook-endpoints").json["webhook_endpoints"]
    one = admin_api("GET", f"/webhook-endpoints/{endpoint_id}")
    for shown in (listed[0], one.json):
        assert shown["url"] == HOOK and shown["description"] == "CRM"
        assert "secret" not in shown and secret not in str(shown)
    assert "whsec_" not in admin_api("GET", "/webhook-endpoints").text

    changed = admin_api("PATCH", f"/webhook-endpoints/{endpoint_id}", json={
        "description": "Sales channel", "format": "slack", "active": False, "event_types": []})
    assert changed.status_code == 200
    assert (changed.json["description"], changed.json["format"], changed.json["active"],
            changed.json["event_types"]) == ("Sales channel", "slack", False, [])
    for bad, words in (({"url": "http://93.184.216.34/x"}, "https"),
                       ({"event_types": ["lead.bogus"]}, "unknown event type"),
                       ({"format": "xml"}, "format must be one of"),
                       ({"active": "yes"}, "active must be true or false")):
        refused = admin_api("PATCH", f"/webhook-endpoints/{endpoint_id}", json=bad)
        assert refused.status_code == 400 and words in refused.json["error"]["message"]
    assert admin_api("POST", "/webhook-endpoints", json={"url": "ftp://x"}).status_code == 400
    assert admin_api("POST", "/webhook-endpoints", json=[1]).status_code == 400

    rotated = admin_api("POST", f"/webhook-endpoints/{endpoint_id}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json["secret"].startswith("whsec_") and rotated.json["secret"] != secret
    saved = WebhookEndpoint.get_by_id(endpoint_id)
    assert (saved.secret, saved.previous_secret) == (rotated.json["secret"], secret)
    until = rotated.json["previous_secret_valid_until"]
    assert until == saved.previous_secret_until.isoformat()
    assert saved.previous_secret_until - utcnow() > timedelta(hours=23)
    assert "whsec_" not in admin_api("GET", f"/webhook-endpoints/{endpoint_id}").text

    assert admin_api("DELETE", f"/webhook-endpoints/{endpoint_id}").status_code == 204
    assert admin_api("GET", f"/webhook-endpoints/{endpoint_id}").status_code == 404
    assert admin_api("DELETE", f"/webhook-endpoints/{endpoint_id}").status_code == 404
    actions = [a.action for a in AuditEvent.select().order_by(AuditEvent.id)]
    assert actions == ["webhook_endpoint_create", "webhook_endpoint_update",
                       "webhook_endpoint_rotate", "webhook_endpoint_delete"]
    assert AuditEvent.get(AuditEvent.action == "webhook_endpoint_create").actor == \
        "api:crm"


def test_test_event_delivery_log_and_retry(admin_api, now):
    endpoint_id = admin_api("POST", "/webhook-endpoints", json={"url": HOOK}).json["id"]
    other_id = admin_api("POST", "/webhook-endpoints", json={"url": HOOK + "2"}).json["id"]
    new_lead("ada@example.com", at=utcnow())  # lead.created to both endpoints
    sent = admin_api("POST", f"/webhook-endpoints/{endpoint_id}/test")
    assert sent.status_code == 202
    assert (sent.json["event_type"], sent.json["status"], sent.json["endpoint_id"]) == (
        "webhook.test", "pending", endpoint_id)
    assert f"deliver-{sent.json['id']}-1" in queued_job_ids()

    created = WebhookDelivery.get(WebhookDelivery.endpoint == endpoint_id,
                                  WebhookDelivery.id != sent.json["id"])
    WebhookDelivery.update(status=WebhookStatus.FAILED, attempts=8, last_status_code=502,
                           last_attempt_at=now, response_excerpt="bad gateway").where(
        WebhookDelivery.id == created.id).execute()
    log = admin_api("GET", f"/webhook-endpoints/{endpoint_id}/deliveries").json
    assert [d["id"] for d in log["deliveries"]] == [sent.json["id"], created.id]
    assert log["next_cursor"] is None
    failed = admin_api("GET", f"/webhook-endpoints/{endpoint_id}/deliveries?status=failed")
    [item] = failed.json["deliveries"]
    assert item == {**item, "event_type": "lead.created", "attempts": 8,
                    "last_status_code": 502, "last_attempt_at": now.isoformat(),
                    "response_excerpt": "bad gateway", "status": "failed",
                    "event_id": WebhookEvent.get(WebhookEvent.type == "lead.created").public_id}
    first = admin_api("GET", f"/webhook-endpoints/{endpoint_id}/deliveries?limit=1").json
    assert [d["id"] for d in first["deliveries"]] == [sent.json["id"]]
    rest = admin_api("GET", f"/webhook-endpoints/{endpoint_id}/deliveries?limit=1"
                            f"&after={first['next_cursor']}").json
    assert [d["id"] for d in rest["deliveries"]] == [created.id]
    assert admin_api("GET", f"/webhook-endpoints/{endpoint_id}/deliveries?status=lost"
                     ).status_code == 400
    assert admin_api("GET", f"/webhook-endpoints/{endpoint_id}/deliveries?after=zz"
                     ).status_code == 400
    assert admin_api("GET", "/webhook-endpoints/999/deliveries").status_code == 404

    retried = admin_api("POST", f"/webhook-deliveries/{created.id}/retry")
    assert retried.status_code == 202
    assert (retried.json["status"], retried.json["attempts"]) == ("pending", 0)
    assert f"deliver-{created.id}-1" in queued_job_ids()
    WebhookDelivery.update(status=WebhookStatus.DELIVERED).where(
        WebhookDelivery.id == created.id).execute()
    again = admin_api("POST", f"/webhook-deliveries/{created.id}/retry")
    assert again.status_code == 400 and "delivered already" in again.json["error"]["message"]
    assert admin_api("POST", "/webhook-deliveries/999/retry").status_code == 404

    assert admin_api("DELETE", f"/webhook-endpoints/{endpoint_id}").status_code == 204
    assert WebhookDelivery.select().where(WebhookDelivery.endpoint == other_id).count() == 1
