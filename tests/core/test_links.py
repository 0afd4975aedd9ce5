"""Signed rep links: GET/HEAD never act; tampered → 400, expired → 410, another rep's → 403,
reassigned → 410 naming the new rep; POST without CSRF → 400; never a 500."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine

from service.core import links
from service.core.db import utcnow
from service.core.models import Handoff, Rep, StageChange
from service.core.runtime import runtime
from service.handoffs.actions import reassign
from service.leads.gdpr import erase_lead
from tests.conftest import csrf_token, run_worker
from tests.factories import promoted

GRACE = "grace@compiler.example.com"


def url(app, handoff, action="accept", rep_id=None):
    rep_id = handoff.rep_id if rep_id is None else rep_id
    token = links.handoff_token(app.secret_key, handoff.id, rep_id, action,
                                handoff.lead.public_id)
    return f"/h/{token}"


def test_token_round_trip_and_tamper():
    token = links.handoff_token("secret", 42, 7, "accept", "pub")
    link = links.read_handoff_token("secret", token, max_age_hours=1)
    assert (link.handoff_id, link.rep_id, link.action, link.public_id) == (42, 7, "accept", "pub")
    body, signature = token.rsplit(".", 1)
    other = "B" if signature[0] == "A" else "A"  # the first character carries 6 whole bits
    for bad in (f"{body}.{other}{signature[1:]}", "not-a-token",
                links.handoff_token("other", 42, 7, "accept", "pub")):
        with pytest.raises(links.BadLink) as caught:
            links.read_handoff_token("secret", bad, max_age_hours=1)
        assert caught.value.status == 400


def test_get_and_head_change_nothing(app, rep, now):
    handoff = promoted(rep, GRACE, at=now)
    client = app.test_client()
    for action in ("accept", "reject"):
        for _ in range(5):
            page = client.get(url(app, handoff, action))
            assert page.status_code == 200
            assert page.headers["X-Robots-Tag"] == "noindex, nofollow"
            assert page.headers["Cache-Control"] == "no-store"
            assert client.head(url(app, handoff, action)).status_code == 200
    assert Handoff.get_by_id(handoff.id).status == "pending"
    assert StageChange.select().count() == 2


def test_tampered_link_page_is_400(app, rep, now):
    handoff = promoted(rep, GRACE, at=now)
    client = app.test_client()
    response = client.get(url(app, handoff)[:-3] + "abc")
    assert response.status_code == 400
    assert "not valid" in response.text and "Traceback" not in response.text
    assert client.post(url(app, handoff)[:-3] + "abc").status_code == 400


def test_expired_link_page_is_410(app, rep):
    with time_machine.travel("2026-11-01 09:00Z", tick=False) as traveller:
        handoff = promoted(rep, GRACE, at=utcnow())
        link, client = url(app, handoff), app.test_client()
        assert client.get(link).status_code == 200
        ttl = runtime.settings.handoff.link_ttl_hours
        traveller.shift(timedelta(hours=ttl, minutes=1))
        response = client.get(link)
    assert response.status_code == 410 and "expired" in response.text


def test_link_of_another_rep_is_refused(app, rep, now):
    handoff = promoted(rep, GRACE, at=now)
    other = Rep.create(email="other@example.com")
    response = app.test_client().get(url(app, handoff, rep_id=other.id))
    assert response.status_code == 403 and "another rep" in response.text


def test_reassigned_link_names_the_new_rep(app, rep, now):
    handoff = promoted(rep, GRACE, at=now)
    jordan = Rep.create(email="jordan@example.com", name="Jordan Rep")
    reassign(handoff.id, rep_id=jordan.id, actor="sam@example.com", now=now,
             settings=runtime.settings)
    client = app.test_client()
    response = client.get(url(app, handoff))
    assert response.status_code == 410 and "Jordan Rep" in response.text
    page = client.get("/admin/login")
    posted = client.post(url(app, handoff), data={"need": "clear",
                                                  "csrf_token": csrf_token(page.text)})
    assert posted.status_code == 410
    assert Handoff.get_by_id(handoff.id).status == "withdrawn"


def test_link_for_missing_handoff_is_410(app):
    token = links.handoff_token(app.secret_key, 999, 1, "reject", "gone")
    response = app.test_client().get(f"/h/{token}")
    assert response.status_code == 410 and "no longer exists" in response.text


def test_decision_link_of_an_erased_lead_is_gone(app, rep, now, smtp, tmp_path):
    """The rep's link for an erased lead neither shows nor decides the handoff of the lead
    captured next, which SQLite gave the same ids before ids were kept for good."""
    erased = promoted(rep, GRACE, at=now)
    run_worker()
    accept = re.search(r"http://localhost(/h/\S+)", smtp.text()).group(1)
    erase_lead(erased.lead_id, actor="dpo@example.com", data_dir=tmp_path, now=now)
    pending = promoted(rep, "bob@example.com", at=now)
    client = app.test_client()
    page = client.get(accept)
    assert page.status_code == 410
    assert "belongs to a record that no longer exists" in page.text
    assert "bob@example.com" not in page.text
    form = client.get("/admin/login")
    posted = client.post(accept, data={"need": "clear", "csrf_token": csrf_token(form.text)})
    assert posted.status_code == 410
    assert Handoff.get_by_id(pending.id).status == "pending"


def test_post_without_csrf_changes_nothing(app, rep, now):
    handoff = promoted(rep, GRACE, at=now)
    client = app.test_client()
    page = client.get(url(app, handoff))
    response = client.post(url(app, handoff), data={"need": "clear"})
    assert response.status_code == 400 and "form expired" in response.text
    wrong = client.post(url(app, handoff), data={"need": "clear", "csrf_token": "x"})
    assert wrong.status_code == 400
    assert Handoff.get_by_id(handoff.id).status == "pending"
    assert csrf_token(page.text)
