"""Panel pages for nurture and data requests: enroll, sequences with counts and previews,
re-engaged list, suppression list, GDPR export and erase."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import (
    Activity,
    AuditEvent,
    EmailEvent,
    Enrollment,
    Handoff,
    Lead,
    OutboxEmail,
    StageChange,
    Suppression,
)
from service.core.runtime import runtime
from service.nurture import sequences as nurture
from service.nurture.suppression import suppress
from tests.admin.test_sales import run_action
from tests.conftest import PASSWORD, csrf_token, log_in, run_worker
from tests.factories import promoted, record_activity
from tests.nurture.test_nurture import SETTINGS, rejected_lead


@pytest.fixture
def admin_client(make_app, rep, now):
    app = make_app(**SETTINGS, **{"mail.transport": "capture"})
    create_user("root@example.com", role="admin", password=PASSWORD, now=now)
    client = app.test_client()
    log_in(client, "root@example.com")
    return app, client


def test_enroll_from_the_lead_list(admin_client, now):
    app, client = admin_client
    lead = record_activity("kay@example.com", type="page_view", source="t", occurred_at=now,
                           now=now).lead
    page = client.get(run_action(client, "lead", "enroll", [lead.id]).headers["Location"])
    assert "Enroll in a nurture sequence" in page.text
    client.post("/admin/lead/enroll/", data={"ids": str(lead.id), "sequence": "default",
                                             "csrf_token": csrf_token(page.text)})
    enrollment = Enrollment.get()
    assert (enrollment.lead.id, enrollment.sequence, enrollment.status) == (
        lead.id, "default", "active")


def test_sequences_page_counts_and_preview(admin_client, rep):
    app, client = admin_client
    with time_machine.travel(datetime(2026, 11, 27, 18, 0, tzinfo=UTC), tick=False) as clock:
        lead = rejected_lead(app, rep)
        clock.move_to(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        nurture.sweep(settings=runtime.settings, now=utcnow())
        run_worker()
    suppress(lead.email, reason="unsubscribe", source="link", now=utcnow())
    page = client.get("/admin/sequences/").text
    row = page[page.index("nurture/checkin"):page.index("nurture/guide")]
    cells = [c.split("<")[0] for c in row.split('class="text-right">')[1:]]
    assert cells == ["1", "0", "1"], "sent, clicked, unsubscribed"
    preview = client.get("/admin/sequences/preview/default/1")
    assert preview.status_code == 200 and "Hi Sam" in preview.text
    assert preview.headers["Content-Security-Policy"].startswith("sandbox")


def test_reengaged_and_suppression_lists(admin_client, rep):
    app, client = admin_client
    lead = rejected_lead(app, rep, at=utcnow())
    Lead.update(re_engaged_at=utcnow()).where(Lead.id == lead.id).execute()
    assert lead.email in client.get("/admin/reengaged/").text
    form = client.get("/admin/suppression/add/")
    client.post("/admin/suppression/add/", data={"email": "Nope@Example.com",
                                                  "csrf_token": csrf_token(form.text)})
    assert Suppression.get().email == "nope@example.com"
    assert "nope@example.com" in client.get("/admin/suppression/").text


def test_export_has_every_field(admin_client, rep, now):
    app, client = admin_client
    lead = rejected_lead(app, rep, at=utcnow())
    response = run_action(client, "lead", "export", [lead.id])
    data = json.loads(response.data)[str(lead.id)]
    assert set(data["lead"]) == set(Lead._meta.fields)
    assert data["lead"]["email"] == "ada@example.com"
    assert [a["type"] for a in data["activities"]] == ["form_submit"]
    assert {"handoffs", "stage_history", "enrollments", "emails", "identities",
            "email_events", "suppression"} <= set(data)
    assert len(data["enrollments"]) == 1 and data["emails"]


def test_erase_leaves_only_the_hashed_suppression(admin_client, rep):
    app, client = admin_client
    lead = rejected_lead(app, rep, at=utcnow())
    EmailEvent.create(provider="ses", kind="soft_bounce", email=lead.email, at=utcnow())
    queued = [row.id for row in OutboxEmail.select()]
    assert all(f"send-email-{i}" in runtime.queue.job_ids for i in queued[:1])
    run_worker()
    captured = Path(runtime.settings.data_dir) / "mail"
    assert any(captured.glob("*.eml"))
    Handoff.update(promoted_by="mia@example.com").execute()
    second = promoted(rep, lead, at=utcnow())
    assert f"send-email-{second.emails[0].id}" in runtime.queue.job_ids
    run_action(client, "lead", "erase", [lead.id])
    for model in (Lead, Activity, StageChange, Handoff, Enrollment, EmailEvent):
        assert model.select().count() == 0, model.__name__
    assert OutboxEmail.select().where(OutboxEmail.to_address == "ada@example.com").count() == 0
    digest = hashlib.sha256(b"ada@example.com").hexdigest()
    left = [(s.email, s.email_hash, s.reason) for s in Suppression.select()]
    assert left == [("", digest, "erased")]
    assert not any(captured.glob("*.eml"))
    assert runtime.queue.job_ids == []
    audit = AuditEvent.get(AuditEvent.action == "erase")
    assert "ada@" not in json.dumps(audit.details)
    run_worker()  # nothing left to send


def test_export_and_erase_are_for_admins(admin_client, marketer, rep):
    app, _ = admin_client
    lead = rejected_lead(app, rep, at=utcnow())
    client = app.test_client()
    log_in(client, "mia@example.com")
    run_action(client, "lead", "erase", [lead.id])
    assert Lead.select().count() == 1
