"""Tracking calls and signed webhooks are served by the intake app (service.intake_app): the
same door as every route (request id, security headers, body checks, JSON errors), without
sessions, while every other route keeps the main app's."""

from __future__ import annotations

import pytest

from service.core.db import utcnow
from service.intake.keys import create_key
from tests.web.test_tracking import basic


@pytest.fixture
def write_key(app):
    return create_key("write_key", "website", sources=["website"], actor="t", now=utcnow())[1]


def test_a_tracking_answer_keeps_the_request_id_cors_and_sets_no_cookie(app, write_key):
    client = app.test_client()
    client.set_cookie("session", "not-a-session")
    response = client.post("/v1/track", json={"userId": "u1", "event": "E"},
                           headers={**basic(write_key), "X-Request-ID": "req-42"})
    assert response.status_code == 200 and response.json == {"success": True}
    assert response.headers["X-Request-ID"] == "req-42"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers


@pytest.mark.parametrize("path, status, code", [
    ("/v1/track/", 404, "http_error"), ("/v1/", 404, "http_error"),
    ("/webhooks/", 404, "http_error"), ("/v1/nowhere", 404, "not_found"),
    ("/webhooks/email-events", 404, "not_found"), ("/webhooks/email-events/ses", 400, "invalid")])
def test_paths_near_the_intake_routes_answer_as_before(app, path, status, code):
    """As the one app answered them before the intake app (checked against it)."""
    client = app.test_client()
    response = client.post(path, data=b"{}", headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json["error"]["code"]) == (status, code)
    assert client.get(path).status_code == (404 if status == 404 and code == "http_error"
                                            else 405)


def test_a_nul_in_a_tracking_query_string_is_refused_at_the_door(app, write_key):
    response = app.test_client().post("/v1/track?x=%00", json={"userId": "u1", "event": "E"},
                                      headers=basic(write_key))
    assert response.status_code == 400 and "NUL" in response.json["error"]["message"]
