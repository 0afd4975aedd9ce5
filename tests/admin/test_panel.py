"""The panel: login required, CSRF on forms, safe redirects, outbox preview."""

from __future__ import annotations

import re
from pathlib import Path

from service.accounts.users import create_user
from service.core.models import User
from service.core.runtime import runtime
from tests.conftest import PASSWORD, csrf_token, log_in, run_worker
from tests.factories import promoted, record_activity


def test_login_required(app, marketer):
    client = app.test_client()
    response = client.get("/admin/lead/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert client.get("/admin/login").status_code == 200


def test_login_page_is_titled_log_in(app):
    page = app.test_client().get("/admin/login").text
    assert re.search(r"<title>\s*(.*?)\s*</title>", page).group(1) == "Log in · Leadbridge"


def test_wrong_password_is_401(app, marketer):
    response = log_in(app.test_client(), "mia@example.com", "wrong password!")
    assert response.status_code == 401 and "Wrong email or password" in response.text


def test_login_without_csrf_is_refused(app, marketer):
    response = app.test_client().post("/admin/login", data={
        "email": "mia@example.com", "password": "correct horse battery"})
    assert response.status_code == 400


def test_next_redirect_stays_in_panel(app, marketer):
    for target, expected in (("/admin/rep/", "/admin/rep/"), ("https://evil.example/", "/admin/"),
                             ("//evil.example/admin", "/admin/")):
        client = app.test_client()
        page = client.get("/admin/login")
        response = client.post(f"/admin/login?next={target}", data={
            "email": "mia@example.com", "password": "correct horse battery",
            "csrf_token": csrf_token(page.text)})
        assert response.headers["Location"] == expected


def test_action_without_csrf_changes_nothing(app, marketer, rep, now):
    lead = record_activity("a@example.com", type="page_view", source="t", occurred_at=now,
                           now=now).lead
    client = app.test_client()
    log_in(client, "mia@example.com")
    client.post("/admin/lead/promote/", data={"ids": str(lead.id), "rep": str(rep.id)})
    assert lead.__class__.get_by_id(lead.id).stage == "lead"


def test_outbox_shows_rendered_mail(make_app, marketer, rep, now):
    app = make_app(**{"mail.transport": "capture"})
    handoff = promoted(rep, "alan@dynabook.example.com", at=now, note="<script>x</script>",
                       activity="pricing_page_view", fields={"first_name": "Alan"})
    client = app.test_client()
    log_in(client, "mia@example.com")
    unsent = client.get(f"/admin/outbox/preview/{handoff.emails[0].id}")
    assert unsent.status_code == 200 and "Accept" in unsent.text
    run_worker()
    listing = client.get("/admin/outbox/")
    assert "alan@dynabook" not in listing.text and "riley.rep@example.com" in listing.text
    preview = client.get(f"/admin/outbox/preview/{handoff.emails[0].id}")
    assert preview.headers["Content-Security-Policy"].startswith("sandbox")
    assert "&lt;script&gt;x&lt;/script&gt;" in preview.text and "<script>" not in preview.text
    assert "pricing_page_view" in preview.text
    captured = list((Path(runtime.settings.data_dir) / "mail").glob("*.eml"))
    assert len(captured) == 1 and b"Alan" in captured[0].read_bytes()


def test_invite_form_shows_domain_errors_and_keeps_what_exists(app, now):
    create_user("root@example.com", role="admin", password=PASSWORD, now=now)
    client = app.test_client()
    log_in(client, "root@example.com")

    def invite(email: str, password: str = "long enough password"):
        page = client.get("/admin/user/invite/")
        return client.post("/admin/user/invite/", follow_redirects=True, data={
            "email": email, "role": "marketer", "password": password,
            "csrf_token": csrf_token(page.text)})

    done = invite("new@example.com")
    assert "new@example.com can now log in as marketer." in done.text
    again = invite("new@example.com")
    assert again.status_code == 200 and "a user with email new@example.com exists" in again.text
    short = invite("other@example.com", password="short")
    assert "password must have at least" in short.text
    assert sorted(u.email for u in User.select()) == ["new@example.com", "root@example.com"]
