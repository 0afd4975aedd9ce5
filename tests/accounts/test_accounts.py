"""Panel accounts: sessions ended on the server, login limits and timing, passwords changed
in the panel, reset by an emailed one-time link or from the command line, and the secret
key's length."""

from __future__ import annotations

import datetime as dt
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import time_machine

from service import create_app
from service.accounts.users import create_user
from service.core.config import ConfigError
from service.core.db import db
from service.core.models import OutboxEmail, SchemaVersion, User
from service.ops.migrations import migrate
from tests.conftest import (
    PASSWORD,
    ROOT,
    csrf_token,
    free_port,
    leadbridge_env,
    log_in,
    post_at_once,
    run_cli,
    run_worker,
)

MIA = "mia@example.com"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def admin_user(app, now) -> User:
    return create_user("root@example.com", role="admin", password=PASSWORD, now=now)


def logged_in_client(app, email: str = MIA, password: str = PASSWORD):
    client = app.test_client()
    assert log_in(client, email, password).status_code == 302
    return client


def is_logged_in(client) -> bool:
    response = client.get("/admin/")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def post_form(client, page: str, target: str, data: dict):
    """POST to target with the CSRF token of page, as the browser would."""
    token = csrf_token(client.get(page).text)
    return client.post(target, data={**data, "csrf_token": token})


# 10. Sessions are revocable on the server


def test_a_copied_session_cookie_dies_at_logout(app, marketer):
    client = logged_in_client(app)
    copied = client.get_cookie("session").value
    response = post_form(client, "/admin/", "/admin/logout", {})
    assert response.status_code == 302 and not is_logged_in(client)
    replay = app.test_client()
    replay.set_cookie("session", copied)
    response = replay.get("/admin/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_upgrading_gives_every_user_their_own_session_token(app, marketer, now):
    for n in range(2):
        create_user(f"u{n}@example.com", role="marketer", password=PASSWORD, now=now)
    db.execute_sql('ALTER TABLE "user" DROP COLUMN "session_token"')
    db.execute_sql('DROP TABLE "rate_count"')
    SchemaVersion.delete().where(SchemaVersion.version == 15).execute()
    assert migrate() == ["0015 accounts: sessions revocable per user; login limits without Redis"]
    tokens = [user.session_token for user in User.select()]
    assert len(set(tokens)) == 3 and all(len(token) == 32 for token in tokens)
    assert is_logged_in(logged_in_client(app))


def test_logout_ends_every_session_of_the_user(app, marketer):
    laptop, phone = logged_in_client(app), logged_in_client(app)
    post_form(laptop, "/admin/", "/admin/logout", {})
    assert not is_logged_in(phone)
    assert is_logged_in(logged_in_client(app))  # logging in again works


def test_deactivating_a_user_ends_their_sessions_for_good(app, marketer, admin_user):
    session = logged_in_client(app)
    admin = logged_in_client(app, "root@example.com")
    edit = f"/admin/user/edit/?id={marketer.id}"
    assert post_form(admin, edit, edit, {"role": "marketer"}).status_code == 302
    assert User.get_by_id(marketer.id).active is False
    assert not is_logged_in(session)
    post_form(admin, edit, edit, {"role": "marketer", "active": "y"})
    assert User.get_by_id(marketer.id).active is True
    assert not is_logged_in(session), "reactivation brought an old session back"
    assert is_logged_in(logged_in_client(app))


# 11. Login timing does not tell which emails have accounts


def login_seconds(app, email: str, address: str) -> float:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address  # its own rate-limit bucket
    token = csrf_token(client.get("/admin/login").text)
    started = time.perf_counter()
    response = client.post("/admin/login", data={
        "email": email, "password": "not the password", "csrf_token": token})
    elapsed = time.perf_counter() - started
    assert response.status_code == 401
    return elapsed


WHO = (MIA, "nobody@example.com", "gone@example.com")  # known, unknown, deactivated


@pytest.fixture
def gone(app, now) -> User:
    create_user("gone@example.com", role="marketer", password=PASSWORD, now=now)
    User.update(active=False).where(User.email == "gone@example.com").execute()
    return User.get(User.email == "gone@example.com")


def test_unknown_and_inactive_emails_take_as_long_as_known_ones(app, marketer, gone):
    addresses = iter(f"10.0.0.{n}" for n in range(1, 255))
    for email in WHO:  # warm up: first requests pay for imports and caches
        login_seconds(app, email, next(addresses))
    times = {email: [] for email in WHO}
    for _ in range(7):  # interleaved, so a busy moment slows every kind alike
        for email in WHO:
            times[email].append(login_seconds(app, email, next(addresses)))
    medians = {email: statistics.median(each) for email, each in times.items()}
    assert max(medians.values()) < 2 * min(medians.values()), medians


def test_every_login_attempt_checks_one_password_hash(app, marketer, gone, monkeypatch):
    import werkzeug.security

    from service.accounts import users

    checks = []

    def counted(pwhash: str, password: str) -> bool:
        checks.append(pwhash.partition(":")[0])  # the method: scrypt for every one
        return werkzeug.security.check_password_hash(pwhash, password)

    monkeypatch.setattr(users, "check_password_hash", counted)
    for n, email in enumerate(WHO):
        login_seconds(app, email, f"10.0.1.{n}")
    assert checks == ["scrypt"] * 3


# 12. The login limit holds for parallel requests and without Redis


def wrong_logins_at_once(url: str, times: int) -> list[int]:
    """`times` wrong logins from one browser session, released together; the statuses."""
    with urllib.request.urlopen(url + "/admin/login", timeout=10) as page:
        cookie = next(c.split(";", 1)[0] for c in page.headers.get_all("Set-Cookie")
                      if c.startswith("session="))
        token = csrf_token(page.read().decode())
    data = urllib.parse.urlencode({"email": MIA, "password": "not the password",
                                   "csrf_token": token}).encode()
    return post_at_once(url + "/admin/login", data, {
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}, times)


def test_parallel_wrong_logins_get_ten_tries(live_server, marketer):
    statuses = wrong_logins_at_once(live_server, 15)
    assert sorted(statuses) == [401] * 10 + [429] * 5


def test_a_good_login_is_not_counted_against_the_limit(app, marketer):
    client = app.test_client()
    for _ in range(9):
        assert log_in(client, MIA, "not the password").status_code == 401
    for _ in range(3):
        assert log_in(app.test_client(), MIA).status_code == 302
    assert log_in(client, MIA, "not the password").status_code == 401
    assert log_in(client, MIA, "not the password").status_code == 429
    assert log_in(app.test_client(), MIA).status_code == 429


def wrong_logins_across_an_edge(client, before: int, after: int) -> list[int]:
    """before wrong passwords in the last second of a 15-minute window, after in the next."""
    statuses = []
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 14, 59, 500000, tzinfo=dt.UTC),
                             tick=False) as clock:
        for n in range(before + after):
            if n == before:
                clock.move_to(dt.datetime(2026, 3, 2, 9, 15, 0, 500000, tzinfo=dt.UTC))
            statuses.append(log_in(client, MIA, "not the password").status_code)
    return statuses


def test_the_limit_holds_across_a_window_edge(app, marketer):
    statuses = wrong_logins_across_an_edge(app.test_client(), 6, 6)
    assert statuses == [401] * 10 + [429] * 2


def test_the_limit_forgets_the_window_before_last(app, marketer):
    client = app.test_client()
    with time_machine.travel(dt.datetime(2026, 3, 2, 8, 59, 59, tzinfo=dt.UTC), tick=False):
        assert [log_in(client, MIA, "not the password").status_code
                for _ in range(11)] == [401] * 10 + [429]
    with time_machine.travel(dt.datetime(2026, 3, 2, 9, 15, 0, 500000, tzinfo=dt.UTC),
                             tick=False):
        assert log_in(client, MIA, "not the password").status_code == 401


class TestWithoutRedis:
    @pytest.fixture
    def settings_overrides(self, settings_overrides):
        return {**settings_overrides, "redis.url": f"redis://127.0.0.1:{free_port()}/0"}

    def test_the_limit_holds(self, app, marketer):
        client = app.test_client()
        for _ in range(10):
            assert log_in(client, MIA, "not the password").status_code == 401
        assert log_in(client, MIA, "not the password").status_code == 429
        assert log_in(app.test_client(), MIA).status_code == 429

    def test_the_limit_holds_across_a_window_edge(self, app, marketer):
        statuses = wrong_logins_across_an_edge(app.test_client(), 6, 6)
        assert statuses == [401] * 10 + [429] * 2

    def test_the_limit_holds_for_parallel_logins(self, live_server, marketer):
        statuses = wrong_logins_at_once(live_server, 15)
        assert sorted(statuses) == [401] * 10 + [429] * 5


# 16. The secret key is long enough


@pytest.mark.parametrize("key, size", [("x", 1), (" " * 40, 0), (" " * 20 + "k" * 31, 31)])
def test_a_short_secret_key_is_refused(settings_overrides, key, size):
    with pytest.raises(ConfigError, match=rf"has {size} bytes; it needs at least 32"):
        create_app(str(ROOT / "config.toml"), {**settings_overrides, "web.secret_key": key})


def test_a_short_secret_key_file_is_refused(settings_overrides, tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret_key").write_text("short\n")
    with pytest.raises(ConfigError, match=r"secret_key has 5 bytes; it needs at least 32"):
        create_app(str(ROOT / "config.toml"), settings_overrides)


def test_generated_secret_keys_are_long(app):
    assert len(app.secret_key.encode()) >= 64


@pytest.mark.parametrize("command", ["init-db", "web"])
def test_the_command_line_refuses_a_short_secret_key_in_one_line(app, settings_overrides,
                                                                  command):
    env = leadbridge_env(app, {**settings_overrides, "web.port": free_port()})
    env["LEADBRIDGE_WEB__SECRET_KEY"] = "x"
    result = subprocess.run([sys.executable, "-m", "service.ops.cli", command], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: the secret key from LEADBRIDGE_WEB__SECRET_KEY has 1 bytes; it needs at least "
        "32 (make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"]


# 17. Passwords can be changed and reset


def change_password(client, current: str, new: str, again: str | None = None):
    return post_form(client, "/admin/password", "/admin/password", {
        "current": current, "new": new, "again": new if again is None else again})


def test_changing_my_password_ends_my_other_sessions(app, marketer):
    here, elsewhere = logged_in_client(app), logged_in_client(app)
    page = here.get("/admin/")
    assert 'href="/admin/password"' in page.text
    response = change_password(here, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert is_logged_in(here) and not is_logged_in(elsewhere)
    assert log_in(app.test_client(), MIA).status_code == 401
    assert log_in(app.test_client(), MIA, NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize("current, new, again, message", [
    ("not the password", NEW_PASSWORD, None, "the current password is not right"),
    (PASSWORD, "short", None, "password must have at least 10 characters"),
    (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "the two differ"),
])
def test_a_refused_change_changes_nothing(app, marketer, current, new, again, message):
    here, elsewhere = logged_in_client(app), logged_in_client(app)
    response = change_password(here, current, new, again)
    assert response.status_code == 200 and message in response.text
    assert is_logged_in(elsewhere)
    assert log_in(app.test_client(), MIA).status_code == 302


def test_guesses_at_the_current_password_are_limited(app, marketer):
    here = logged_in_client(app)
    answers = [change_password(here, f"guess number {n}", NEW_PASSWORD).status_code
               for n in range(12)]
    assert answers == [200] * 10 + [429] * 2
    assert change_password(here, PASSWORD, NEW_PASSWORD).status_code == 429
    assert log_in(app.test_client(), MIA).status_code == 302, "the password is unchanged"


def test_changing_a_password_needs_the_csrf_token_and_a_login(app, marketer):
    here = logged_in_client(app)
    response = here.post("/admin/password", data={
        "current": PASSWORD, "new": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert response.status_code == 400
    assert log_in(app.test_client(), MIA).status_code == 302
    anonymous = app.test_client().get("/admin/password")
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]


def reset_link_emailed(app, smtp, admin_user, user: User) -> str:
    admin = logged_in_client(app, "root@example.com")
    response = post_form(admin, "/admin/user/", "/admin/user/action/", {
        "action": "send_reset", "rowid": [str(user.id)]})
    assert response.status_code == 302
    waiting = OutboxEmail.get(OutboxEmail.template == "password_reset", OutboxEmail.to_address
                              == user.email, OutboxEmail.sent_at.is_null())
    preview = admin.get(f"/admin/outbox/preview/{waiting.id}")
    assert preview.status_code == 200 and "/admin/reset/" not in preview.text
    run_worker()
    message = smtp.messages[-1]
    assert message["To"] == user.email and message["Subject"] == "Set a new Leadbridge password"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    link = re.search(r"http://localhost(/admin/reset/\S+)", text).group(1)
    assert link in html
    return link


def test_an_admin_emails_a_reset_link_that_works_once(app, smtp, marketer, admin_user):
    session = logged_in_client(app)
    link = reset_link_emailed(app, smtp, admin_user, marketer)
    stored = OutboxEmail.get(OutboxEmail.template == "password_reset")
    assert link not in stored.body_text + stored.body_html, "the outbox keeps the live link"
    visitor = app.test_client()
    response = post_form(visitor, link, link, {"new": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert not is_logged_in(session)
    assert log_in(app.test_client(), MIA, NEW_PASSWORD).status_code == 302
    again = app.test_client()
    assert again.get(link).status_code == 410
    assert post_form(again, "/admin/login", link, {
        "new": "yet another password", "again": "yet another password"}).status_code == 410
    assert log_in(app.test_client(), MIA, NEW_PASSWORD).status_code == 302


def test_a_reset_link_dies_when_the_password_changes_otherwise(app, smtp, marketer,
                                                               admin_user):
    link = reset_link_emailed(app, smtp, admin_user, marketer)
    assert app.test_client().get(link).status_code == 200
    change_password(logged_in_client(app), PASSWORD, NEW_PASSWORD)
    assert app.test_client().get(link).status_code == 410
    tampered = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
    assert app.test_client().get(tampered).status_code == 410


def test_only_admins_send_reset_links(app, smtp, marketer, admin_user):
    client = logged_in_client(app)
    response = client.post("/admin/user/action/", data={
        "action": "send_reset", "rowid": [str(admin_user.id)],
        "csrf_token": csrf_token(client.get("/admin/").text)})
    assert response.status_code == 403
    assert OutboxEmail.select().count() == 0


def test_set_password_from_the_command_line(app, settings_overrides, marketer):
    session = logged_in_client(app)
    result = run_cli(app, settings_overrides, "set-password", "Mia@Example.com",
                     stdin=NEW_PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "password set for mia@example.com; every session of theirs has ended")
    assert not is_logged_in(session)
    assert log_in(app.test_client(), MIA, NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize("email, stdin, message", [
    ("nobody@example.com", NEW_PASSWORD + "\n", "Error: no user with email nobody@example.com"),
    (MIA, "short\n", "Error: password must have at least 10 characters"),
    (MIA, "", "Error: password must have at least 10 characters"),
])
def test_set_password_refuses_bad_input_in_one_line(app, settings_overrides, marketer, email,
                                                    stdin, message):
    result = run_cli(app, settings_overrides, "set-password", email, stdin=stdin)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [message]
    assert log_in(app.test_client(), MIA).status_code == 302
