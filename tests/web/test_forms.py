"""POST /f/<slug>: creates or updates the lead; bad input is a clear 4xx and loses nothing."""

from __future__ import annotations

from service.core.models import Activity, Lead


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


def test_honeypot_hits_are_counted(app):
    from service.intake.counters import total

    client = app.test_client()
    for _ in range(3):
        client.post("/f/contact", data={"email": "bot@example.com", "website": "x"})
    assert total("form:contact", "honeypot") == 3 and Lead.select().count() == 0


def test_rate_limit_per_ip(make_app):
    app = make_app(**{"intake.form_rate_per_minute": 3})
    client = app.test_client()
    statuses = [client.post("/f/contact", data={"email": f"p{i}@example.com"},
                            environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code
                for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    other = client.post("/f/contact", data={"email": "q@example.com"},
                        environ_base={"REMOTE_ADDR": "203.0.113.10"})
    assert other.status_code == 200
    limited = client.post("/f/contact", json={"email": "z@example.com"},
                          environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
    assert limited.json["error"]["code"] == "rate_limited"
    assert Lead.select().count() == 4


def test_utm_and_referrer_kept(app):
    app.test_client().post(
        "/f/contact", data={"email": "u@example.com", "utm_campaign": "spring"},
        headers={"Referer": "https://www.example.com/landing?utm_source=linkedin&x=1"})
    activity = Activity.get()
    assert activity.properties["utm"] == {"utm_source": "linkedin", "utm_campaign": "spring"}
    assert activity.properties["referrer"].startswith("https://www.example.com/landing")
    assert (activity.lead.utm_source, activity.lead.utm_campaign) == ("linkedin", "spring")
    app.test_client().post("/f/contact", data={
        "email": "u@example.com", "utm_source": "google", "utm_campaign": "autumn"})
    lead = Lead.get(Lead.email == "u@example.com")
    assert (lead.utm_source, lead.utm_campaign) == ("linkedin", "spring"), "the first touch"


def test_cors_for_configured_origins(make_app):
    app = make_app(forms={"contact": {"fields": {}, "cors_origins": ["https://www.example.com"]}})
    client = app.test_client()
    preflight = client.options("/f/contact", headers={
        "Origin": "https://www.example.com", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://www.example.com"
    post = client.post("/f/contact", json={"email": "c@example.com"},
                       headers={"Origin": "https://evil.example.net"})
    assert post.status_code == 201 and "Access-Control-Allow-Origin" not in post.headers


def test_redirect_only_to_allowed_targets(make_app):
    app = make_app(forms={"contact": {"fields": {}, "allowed_redirects": [
        "https://www.example.com/thanks-a"]}})
    client = app.test_client()
    allowed = client.post("/f/contact", data={"email": "a@example.com",
                                              "_redirect": "https://www.example.com/thanks-a"})
    assert allowed.status_code == 303
    refused = client.post("/f/contact", data={"email": "b@example.com",
                                              "_redirect": "https://evil.example.net/"})
    assert refused.status_code == 200 and "Location" not in refused.headers


def test_a_field_sent_as_an_object_or_a_list_is_400_and_stores_nothing(app):
    client = app.test_client()
    for payload in ({"email": "ada@example.com", "first_name": {"a": 1}},
                    {"email": "ada@example.com", "company": ["Acme", "Evil"]},
                    {"email": ["ada@example.com"]}):
        response = client.post("/f/contact", json=payload)
        assert response.status_code == 400, payload
        assert "must be text" in response.json["error"]["message"]
    assert Lead.select().count() == 0
