"""POST /f/<slug>: creates or updates the lead; bad input is a clear 4xx and loses nothing."""

from __future__ import annotations

from service.models import Activity, Lead


def test_form_creates_then_updates_lead(app):
    client = app.test_client()
    first = client.post("/f/contact", data={"email": " Radia@Spanning.example.com",
                                            "company": "Spanning"})
    assert first.status_code == 200 and "Thanks" in first.text
    second = client.post("/f/contact", json={"email": "radia@spanning.example.com",
                                             "first_name": "Radia", "company": ""})
    assert second.status_code == 201 and second.json == {"ok": True}
    lead = Lead.get(Lead.email == "radia@spanning.example.com")
    assert (lead.first_name, lead.company, lead.stage) == ("Radia", "Spanning", "lead")
    activities = Activity.select().where(Activity.lead == lead.id)
    assert [a.type for a in activities] == ["form_submit", "form_submit"]
    assert activities[0].source == "form:contact"
    assert activities[0].raw["company"] == "Spanning"


def test_bad_email_is_400_and_keeps_earlier_leads(app):
    client = app.test_client()
    client.post("/f/contact", data={"email": "kept@example.com"})
    for payload in ({"email": "not-an-email"}, {"first_name": "no email"}):
        html = client.post("/f/contact", data=payload)
        assert html.status_code == 400 and "email" in html.text
        js = client.post("/f/contact", json=payload)
        assert js.status_code == 400 and js.json["error"]["code"] == "invalid"
    assert [lead.email for lead in Lead.select()] == ["kept@example.com"]


def test_json_that_is_not_an_object_is_400(app):
    response = app.test_client().post("/f/contact", data="[1,2]",
                                      content_type="application/json")
    assert response.status_code == 400 and "error" in response.json


def test_unknown_form_is_404(app):
    response = app.test_client().post("/f/nope", json={"email": "a@example.com"})
    assert response.status_code == 404 and "nope" in response.json["error"]["message"]


def test_honeypot_is_dropped_quietly(app):
    response = app.test_client().post("/f/contact", data={"email": "bot@example.com",
                                                          "website": "http://spam"})
    assert response.status_code == 200
    assert Lead.select().count() == 0


def test_configured_redirect(make_app):
    app = make_app(forms={"contact": {"redirect": "https://example.com/thanks", "fields": {}}})
    response = app.test_client().post("/f/contact", data={"email": "r@example.com"})
    assert response.status_code == 303
    assert response.headers["Location"] == "https://example.com/thanks"


def test_health_endpoints(app):
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"] == {"database": "ok",
                                                                 "redis": "ok"}


def test_readyz_without_redis_is_503(make_app):
    app = make_app(**{"redis.url": "redis://127.0.0.1:1/0"})
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["redis"].startswith("error")
