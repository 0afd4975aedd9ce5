"""Signed rep links: tampered → 400, expired → 410, wrong purpose → 400; never a 500."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from service import links
from service.handoffs import promote_lead
from service.intake import record_activity


def make_handoff(app, rep, now):
    lead = record_activity("grace@compiler.example.com", type="form_submit", source="test",
                           occurred_at=now, now=now).lead
    return promote_lead(lead.id, rep_id=rep.id, note="", actor="mia@example.com",
                        settings=app.config["SETTINGS"], now=now)


def test_token_round_trip_and_tamper():
    token = links.handoff_token("secret", 42, "accept")
    assert links.read_handoff_token("secret", token, max_age_hours=1) == links.HandoffLink(
        42, "accept")
    for bad in (token[:-2] + "xx", "not-a-token", links.handoff_token("other", 42, "accept")):
        try:
            links.read_handoff_token("secret", bad, max_age_hours=1)
        except links.ExpiredLink:
            raise AssertionError("a tampered token is not an expired one") from None
        except links.BadLink as exc:
            assert exc.status == 400
        else:
            raise AssertionError("tampered token accepted")


def test_tampered_link_page_is_400(app, rep, now):
    handoff = make_handoff(app, rep, now)
    token = links.handoff_token(app.secret_key, handoff.id, "accept")
    client = app.test_client()
    response = client.get(f"/h/{token[:-3]}abc")
    assert response.status_code == 400
    assert "not valid" in response.text and "Traceback" not in response.text
    assert client.post(f"/h/{token[:-3]}abc").status_code == 400


def test_expired_link_page_is_410(app, rep):
    with time_machine.travel("2026-11-01 09:00Z", tick=False) as traveller:
        from service.db import utcnow

        handoff = make_handoff(app, rep, utcnow())
        token = links.handoff_token(app.secret_key, handoff.id, "accept")
        client = app.test_client()
        assert client.get(f"/h/{token}").status_code == 200
        ttl = app.config["SETTINGS"]["handoff.link_ttl_hours"]
        traveller.shift(timedelta(hours=ttl, minutes=1))
        response = client.get(f"/h/{token}")
    assert response.status_code == 410 and "expired" in response.text


def test_link_for_missing_handoff_is_404(app):
    token = links.handoff_token(app.secret_key, 999, "reject")
    assert app.test_client().get(f"/h/{token}").status_code == 404


def test_post_without_csrf_changes_nothing(app, rep, now):
    handoff = make_handoff(app, rep, now)
    token = links.handoff_token(app.secret_key, handoff.id, "accept")
    response = app.test_client().post(f"/h/{token}", data={"need": "clear"})
    assert response.status_code == 400
    assert handoff.__class__.get_by_id(handoff.id).status == "pending"
