"""The JSON API: bearer keys, every endpoint of SPEC §11, and an OpenAPI-driven run
(schemathesis) that validates every response against the published document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import (
    Handoff,
    Lead,
    Rep,
    Team,
    WebhookDelivery,
    WebhookEndpoint,
)
from service.intake.keys import create_key
from tests.conftest import PASSWORD, csrf_token, run_worker
from tests.factories import new_lead, record_activity
from tests.test_end_to_end import BANT, link_from


@pytest.fixture
def api(app):
    key = create_key("api", "crm", sources=["crm"], actor="t", now=utcnow(),
                     owner="mia@example.com")[1]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}

    def call(method, path, **kwargs):
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    return call


def test_key_required(app):
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/leads", headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/openapi.json").json["openapi"].startswith("3.")


def test_leads_and_promotion(api, rep, now):
    lead = record_activity("Ada@Example.com", type="pricing_page_view", source="t",
                           occurred_at=now, now=now, fields={"first_name": "Ada"}).lead
    found = api("GET", "/leads?email=ADA@example.com").json["leads"]
    assert [item["id"] for item in found] == [lead.id]
    assert found[0]["activities"][0]["type"] == "pricing_page_view"
    one = api("GET", f"/leads/{lead.id}").json
    assert one["stage"] == "lead" and one["stage_history"][0]["to"] == "lead"
    made = api("POST", f"/leads/{lead.id}/promote", json={"rep": rep.email, "note": "Hot"})
    assert made.status_code == 201 and made.json["rep"] == rep.email
    assert made.json["promoted_by"] == "mia@example.com" and made.json["status"] == "pending"
    history = api("GET", f"/leads/{lead.id}").json["stage_history"]
    assert history[-1]["actor"] == "api:crm", "the key is the actor, its owner the promoter"
    again = api("POST", f"/leads/{lead.id}/promote", json={"rep": None})
    assert again.status_code == 409 and "stage mql" in again.json["error"]["message"]
    assert api("GET", "/leads/999").status_code == 404
    pending = api("GET", "/handoffs?status=pending").json["handoffs"]
    assert [h["id"] for h in pending] == [made.json["id"]]
    assert api("GET", f"/handoffs/{made.json['id']}").json["note"] == "Hot"
    assert api("GET", "/handoffs?status=maybe").status_code == 400


def test_promotion_uses_assignment_when_rep_is_null(api, rep, now):
    lead = record_activity("b@example.com", type="page_view", source="t", occurred_at=now,
                           now=now).lead
    made = api("POST", f"/leads/{lead.id}/promote", json={"rep": None, "note": ""})
    assert made.status_code == 201 and made.json["rep"] == rep.email


def test_promotion_with_no_reps_says_how_to_add_one(api, now):
    lead = record_activity("b@example.com", type="page_view", source="t", occurred_at=now,
                           now=now).lead
    refused = api("POST", f"/leads/{lead.id}/promote", json={"rep": None, "note": ""})
    assert refused.status_code == 400
    assert refused.json["error"] == {"code": "no_reps", "message": (
        "There are no reps yet: add one under Sales → Reps (/admin/rep/new/) or "
        "POST /api/v1/reps.")}
    assert api("POST", "/reps", json={"email": "riley@example.com"}).status_code == 201
    made = api("POST", f"/leads/{lead.id}/promote", json={"rep": None, "note": ""})
    assert made.status_code == 201 and made.json["rep"] == "riley@example.com"


def test_outbound_sql(api, rep):
    bant = {"budget": "confirmed", "authority": "decision_maker", "need": "clear",
            "timeline": "lt_3m"}
    made = api("POST", "/sqls", json={"email": "cold@example.com", "rep": rep.email,
                                      "lead": {"company": "Cold Co"}, "bant": bant})
    assert made.status_code == 201 and made.json["origin"] == "outbound"
    lead = Lead.get(Lead.email == "cold@example.com")
    assert (lead.stage, lead.company) == ("sql", "Cold Co")
    missing = api("POST", "/sqls", json={"email": "x@example.com", "rep": rep.email,
                                         "bant": {**bant, "need": "unknown"}})
    assert missing.status_code == 400 and "need is required" in missing.json["error"]["message"]
    again = api("POST", "/sqls", json={"email": "cold@example.com", "rep": rep.email,
                                       "bant": bant})
    assert again.status_code == 409
    assert Handoff.select().count() == 1


def test_reps_and_teams_sync(api):
    assert api("POST", "/teams", json={"name": "EMEA", "manager_email": "sam@example.com"}
               ).status_code == 201
    created = api("POST", "/reps", json={"email": "Riley@Example.com", "name": "Riley",
                                         "team": "EMEA", "time_zone": "Europe/Berlin",
                                         "weight": 2, "away_from": "2026-12-24",
                                         "away_until": "2027-01-02"})
    assert created.status_code == 201 and created.json["team"] == "EMEA"
    updated = api("POST", "/reps", json={"email": "riley@example.com", "capacity": 5,
                                         "out_of_office": True})
    assert updated.status_code == 200 and updated.json["capacity"] == 5
    rep = Rep.get()
    assert (rep.weight, rep.capacity, rep.out_of_office, rep.team.name) == (2, 5, True, "EMEA")
    for bad, message in (({"email": "r@example.com", "time_zone": "Mars/Base"}, "time zone"),
                         ({"email": "r@example.com", "weight": -1}, "weight"),
                         ({"email": "r@example.com", "team": "Nope"}, "no team named"),
                         ({"email": "nope"}, "email is not valid")):
        response = api("POST", "/reps", json=bad)
        assert response.status_code == 400 and message in response.json["error"]["message"]
    assert Rep.select().count() == 1 and Team.select().count() == 1
    assert [r["email"] for r in api("GET", "/reps").json["reps"]] == ["riley@example.com"]
    assert api("GET", "/teams").json["teams"][0]["manager_email"] == "sam@example.com"


def test_api_conforms_to_openapi(app, rep, now):
    """Every operation, generated from the document: no 5xx, and every response (status,
    content type, body) as the document says. Not checked: that every schema-valid request
    is accepted — the document gives shapes, the server also checks meaning (a real email,
    a known rep, the BANT rules) and answers a documented 400 with a message."""
    key = create_key("api", "fuzz", sources=["fuzz"], actor="t", now=now,
                     owner="mia@example.com")[1]
    create_user("mia@example.com", role="admin", password=PASSWORD, now=now)  # webhooks too
    endpoint = WebhookEndpoint.create(url="https://hooks.example.com/1", secret="whsec_x")
    record_activity("seed@example.com", type="page_view", source="t", occurred_at=now, now=now)
    WebhookDelivery.update(status="failed").where(WebhookDelivery.endpoint == endpoint).execute()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 21

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {key}"},
                                   excluded_checks=[positive_data_acceptance])

        check()


def test_an_api_promotion_gets_feedback_to_the_keys_owner(app, api, rep, smtp):
    """The key acts for its owner: the rep's decision reaches them, as the page says."""
    lead = new_lead("ada@example.com", at=utcnow(), fields={"first_name": "Ada"}, source="crm",
                    activity=None)
    assert api("POST", f"/leads/{lead.id}/promote", json={"rep": rep.email}).status_code == 201
    run_worker()
    assert smtp.messages[0]["Reply-To"] == "mia@example.com"
    rep_browser = app.test_client()
    path = link_from(smtp.text(0), "accept")
    page = rep_browser.get(path)
    answer = rep_browser.post(path, data={**BANT, "csrf_token": csrf_token(page.text)})
    assert "mia@example.com from marketing has your answer" in answer.text
    run_worker()
    feedback = [m for m in smtp.messages if m["To"] == "mia@example.com"]
    assert len(feedback) == 1 and feedback[0]["Subject"].startswith("Riley Rep accepted Ada")


def test_an_api_key_names_its_owner(app):
    from service.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="needs an owner"):
        create_key("api", "crm", sources=["crm"], actor="t", now=utcnow())
