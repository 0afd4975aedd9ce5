"""Hardening: security headers and a strict CSP, size limits, NUL characters, the login rate
limit, and secrets and personal data kept out of logs and job arguments."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import time_machine

from service.core import links, logs
from service.core.db import utcnow
from service.core.models import Activity, Lead, OutboxEmail, Rep, Team
from service.core.runtime import runtime
from service.intake.event import lead_fields
from service.intake.keys import create_key
from tests.conftest import PASSWORD, csrf_token, log_in, run_worker
from tests.factories import promoted
from tests.web.test_tracking import basic
from tests.web.test_webhooks import event, signed
from workers import recorder

SCRIPT_TAG = re.compile(r"<script\b[^>]*>")


def keys():
    now = utcnow()
    return {kind: create_key(kind, "website", sources=["website"], actor="t", now=now,
                             owner="mia@example.com")[1]
            for kind in ("webhook", "write_key", "api")}


def test_security_headers_and_strict_csp_on_every_response(app):
    secrets = keys()
    client = app.test_client()
    responses = [
        client.get("/healthz"), client.get("/admin/login"), client.get("/nowhere"),
        client.get("/api/v1/leads"), client.options("/v1/track"),
        client.post("/webhooks/website", json=event()),
        client.post("/v1/track", headers=basic(secrets["write_key"]), json={
            "userId": "u1", "event": "Trial Started"}),
    ]
    assert [r.status_code for r in responses] == [200, 200, 404, 401, 204, 401, 200]
    for response in responses:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
        assert response.headers["Referrer-Policy"] == "same-origin"
        policy = response.headers["Content-Security-Policy"]
        scripts = next(p for p in policy.split("; ") if p.startswith("script-src"))
        assert "'unsafe-inline'" not in scripts and "object-src 'none'" in policy

    login = responses[1]
    nonce = re.search(r"'nonce-([^']+)'", login.headers["Content-Security-Policy"]).group(1)
    tags = SCRIPT_TAG.findall(login.text)
    assert tags and all(f'nonce="{nonce}"' in tag for tag in tags)
    again = client.get("/admin/login").headers["Content-Security-Policy"]
    assert f"'nonce-{nonce}'" not in again  # a new nonce for every page


def test_request_size_limits_answer_413_and_store_nothing(app):
    secrets = keys()
    client = app.test_client()
    huge = json.dumps(event(notes="x" * (2 * 1024 * 1024))).encode()
    webhook = client.post("/webhooks/website", data=huge, headers=signed(
        secrets["webhook"], None, raw=huge)[1])
    assert webhook.status_code == 413
    assert webhook.json["error"]["message"] == "The request is too large."

    track = client.post("/v1/track", headers=basic(secrets["write_key"]), json={
        "userId": "u1", "event": "Trial Started", "properties": {"x": "y" * 600_000}})
    assert track.status_code == 413 and track.json["error"]["message"] == "body over 512 KiB"

    bomb = gzip.compress(json.dumps({"userId": "u1", "event": "E", "properties": {
        "x": "0" * 5_000_000}}).encode())
    inflated = client.post("/v1/track", data=bomb, headers={
        **basic(secrets["write_key"]), "Content-Encoding": "gzip",
        "Content-Type": "application/json"})
    assert inflated.status_code == 413  # as the README says
    assert "over 512 KiB once decompressed" in inflated.json["error"]["message"]
    assert Activity.select().count() == 0 and Lead.select().count() == 0

    fine = client.post("/webhooks/website", data=signed(secrets["webhook"], event())[0],
                       headers=signed(secrets["webhook"], event())[1])
    assert fine.status_code == 202 and recorder.drain() == 1
    assert Activity.select().count() == 1


def test_nul_characters_get_a_clear_400_and_nothing_is_stored(app, marketer):
    secrets = keys()
    client = app.test_client()
    api = client.post("/api/v1/teams", json={"name": "Ne\u0000rds"},
                      headers={"Authorization": f"Bearer {secrets['api']}"})
    assert api.status_code == 400 and "NUL" in api.json["error"]["message"]

    message = {"userId": "u1", "event": "Trial Started",
               "context": {"traits": {"email": "ada@example.com", "firstName": "A\u0000da"}}}
    plain = client.post("/v1/track", headers=basic(secrets["write_key"]), json=message)
    zipped = client.post("/v1/track", data=gzip.compress(json.dumps(message).encode()),
                         headers={**basic(secrets["write_key"]), "Content-Encoding": "gzip",
                                  "Content-Type": "application/json"})
    assert plain.status_code == zipped.status_code == 400
    assert "NUL" in zipped.json["error"]["message"]

    page = client.get("/admin/login")
    form = client.post("/admin/login", data={"email": "mia@example.com\x00", "password": "x",
                                             "csrf_token": csrf_token(page.text)})
    assert form.status_code == 400 and "NUL" in form.text
    assert Team.select().count() == 0 and Lead.select().count() == 0

    # CSV imports and other intake drop a stray NUL from lead fields rather than lose the row
    assert lead_fields({"first_name": "A\x00da", "company": "\x00"}) == {"first_name": "Ada"}


def test_login_rate_limit_per_address(app, marketer):
    """The longest lockout: the guesses made as a quarter hour begins weigh on the next
    quarter until 2.7 minutes into it (11 × (1 - 2.7/15) + 1 ≤ 10)."""
    client = app.test_client()
    quarter = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with time_machine.travel(quarter, tick=False) as clock:
        for _ in range(10):
            assert log_in(client, "mia@example.com", "wrong password").status_code == 401
        blocked = log_in(client, "mia@example.com", PASSWORD)
        assert blocked.status_code == 429 and "Try again in 20 minutes" in blocked.text
        assert client.get("/admin/lead/").status_code == 302  # not logged in
        clock.move_to(quarter + timedelta(minutes=18))
        assert log_in(client, "mia@example.com", PASSWORD).status_code == 302
        assert client.get("/admin/lead/").status_code == 200


def test_secrets_and_personal_data_stay_out_of_logs_and_job_arguments(make_app, smtp):
    app = make_app(**{"metrics.key": "metrics-key-0123456789"})
    secrets = keys()
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(handler.format(record))
    handler.addFilter(logs.ContextFilter())
    logging.getLogger().addHandler(handler)
    try:
        client = app.test_client()
        data, headers = signed(secrets["webhook"], event(email="ada@lovelace.example.com"))
        assert client.post("/webhooks/website", data=data, headers=headers).status_code == 202
        assert client.post("/v1/track", headers=basic(secrets["write_key"]), json={
            "userId": "u1", "event": "Trial Started",
            "context": {"traits": {"email": "grace@hopper.example.com"}}}).status_code == 200
        recorder.drain()
        assert client.get("/api/v1/leads", headers={
            "Authorization": f"Bearer {secrets['api']}"}).status_code == 200
        log_in(client, "nobody@example.com", "hunter2-password")
        rep = Rep.create(email="riley.rep@example.com", name="Riley Rep")
        smtp.refuse["riley.rep@example.com"] = "550 5.1.1 <riley.rep@example.com>: no such user"
        promoted(rep, Lead.get(Lead.email == "ada@lovelace.example.com"), at=utcnow(),
                 actor="m")
        jobs = [runtime.queue.fetch_job(job_id) for job_id in runtime.queue.job_ids]
        assert jobs and all(_only_ids([*job.args, *job.kwargs.values()]) for job in jobs)
        run_worker()
    finally:
        logging.getLogger().removeHandler(handler)
    assert OutboxEmail.get().failed_at is not None  # the refusal was logged (masked)
    text = "\n".join(lines)
    assert "outbox" in text and "…@example.com" in text
    for secret in (*secrets.values(), app.secret_key, "hunter2-password",
                   "metrics-key-0123456789"):
        assert secret not in text
    for address in ("ada@lovelace.example.com", "grace@hopper.example.com",
                    "riley.rep@example.com", "nobody@example.com"):
        assert address not in text


def _only_ids(values) -> bool:
    return all(value is None or isinstance(value, int) or
               (isinstance(value, list) and _only_ids(value)) for value in values)


def test_access_log_has_no_write_key_or_link_token(app, rep, live_server, tmp_path):
    secrets = keys()
    now = utcnow()
    handoff = promoted(rep, at=now, actor="m")
    lead = handoff.lead
    token = links.handoff_token(app.secret_key, handoff.id, rep.id, "accept",
                                lead.public_id)
    urllib.request.urlopen(f"{live_server}/h/{token}").close()
    request = urllib.request.Request(
        f"{live_server}/v1/track?writeKey={secrets['write_key']}",
        data=json.dumps({"userId": "u1", "event": "Trial Started"}).encode(),
        headers={**basic(secrets["write_key"]), "Content-Type": "application/json"})
    urllib.request.urlopen(request).close()
    deadline = time.monotonic() + 10  # gunicorn writes the line after the response
    while '"POST /v1/track HTTP/1.1" 200' not in (log := (tmp_path / "web.log").read_text()):
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
    assert '"GET /h/[token] HTTP/1.1" 200' in log
    assert token not in log and secrets["write_key"] not in log
    assert base64.b64encode(f"{secrets['write_key']}:".encode()).decode() not in log
