"""Merging duplicates goes through the lifecycle: a pending handoff is carried over to a
survivor that can take it, or withdrawn; enrollments move and only one sequence runs; the
stage history, the audit log and the report rollups follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from service import lifecycle
from service.core.db import utcnow
from service.core.models import AuditEvent, Enrollment, Handoff, Lead, OutboxEmail, Rep, StageChange
from service.core.runtime import runtime
from service.handoffs import escalation
from service.leads.merge import merge_leads
from service.reports import rollups
from tests.conftest import csrf_token, log_in, run_worker
from tests.factories import new_lead, promoted
from tests.handoffs.test_escalation import SLA
from tests.nurture.test_nurture import FRIDAY_EVENING, nurture_mail, rejected_lead, sweep
from tests.nurture.test_nurture import SETTINGS as NURTURE
from tests.test_end_to_end import BANT, link_from

KEPT, DUPLICATE = "grace@navy.example.com", "g.hopper@navy.example.com"
CONTACT = {"activity": "contact_sales"}


def outbound_sql(email, rep, now):
    handoff = lifecycle.register_outbound(email, fields={}, rep_id=rep.id, bant=BANT, notes="",
                                          actor="sam@example.com", now=now)
    return handoff.lead


def merge_in_panel(app, keep: Lead, other: Lead) -> None:
    client = app.test_client()
    log_in(client, "mia@example.com")
    ids = f"{keep.id},{other.id}"
    form = client.get(f"/admin/lead/merge/?ids={ids}")
    done = client.post("/admin/lead/merge/", data={
        "ids": ids, "survivor": str(keep.id), "csrf_token": csrf_token(form.text)})
    assert done.status_code == 302, done.text


def rep_mail_about(smtp, email: str) -> str:
    return next(text for text in map(smtp.text, range(len(smtp.messages)))
                if f"Email:    {email}" in text)


def history(lead_id: int) -> list[tuple]:
    rows = StageChange.select().where(StageChange.lead == lead_id).order_by(StageChange.id)
    return [(row.from_stage, row.to_stage, row.reason) for row in rows]


def merge_audit() -> dict:
    return AuditEvent.get(AuditEvent.action == "merge").details


def test_handoff_carried_over_to_a_survivor_at_lead(app, rep, marketer, smtp):
    now = utcnow()
    survivor = new_lead(KEPT, at=now, **CONTACT)
    handoff = promoted(rep, DUPLICATE, at=now, **CONTACT)
    run_worker()
    accept = link_from(rep_mail_about(smtp, DUPLICATE), "accept")

    merge_in_panel(app, survivor, handoff.lead)

    assert Lead.get_by_id(survivor.id).stage == "mql"
    moved = Handoff.get_by_id(handoff.id)
    assert (moved.lead_id, moved.status, moved.rep_id) == (survivor.id, "pending", rep.id)
    assert history(survivor.id)[-1] == (
        "lead", "mql", f"merged: took over the handoff of {DUPLICATE}")
    assert merge_audit() == {
        "survivor": KEPT, "merged": DUPLICATE, "merged_id": handoff.lead_id,
        "handoff": {"id": handoff.id, "outcome": "carried over", "rep": rep.email},
        "enrollments": {"moved": 0, "stopped": 0}}
    rollups.refresh(now)
    assert rollups.per_day("mql", now.date(), now.date()) == [(now.date(), "", 1)], \
        "taking over a handoff is not a second MQL"

    rep_browser = app.test_client()
    page = rep_browser.get(accept)
    assert page.status_code == 200 and "Accept as SQL" in page.text and KEPT in page.text
    answer = rep_browser.post(accept, data={**BANT, "csrf_token": csrf_token(page.text)})
    assert answer.status_code == 200 and "accepted" in answer.text
    assert Lead.get_by_id(survivor.id).stage == "sql"
    assert Handoff.get_by_id(handoff.id).status == "accepted"


@pytest.mark.parametrize("survivor_stage", ["sql", "mql"])
def test_handoff_withdrawn_when_the_survivor_cannot_take_it(make_app, rep, smtp,
                                                           survivor_stage):
    app = make_app(**SLA)
    now = utcnow()
    if survivor_stage == "sql":
        survivor = outbound_sql(KEPT, rep, now)
    else:
        jordan = Rep.create(email="jordan@example.com", name="Jordan")
        survivor = promoted(jordan, KEPT, at=now, **CONTACT).lead
    handoff = promoted(rep, DUPLICATE, at=now, **CONTACT)
    run_worker()
    accept = link_from(rep_mail_about(smtp, DUPLICATE), "accept")
    before = history(survivor.id)

    merge_leads(survivor.id, handoff.lead_id, actor="mia@example.com", now=now)

    withdrawn = Handoff.get_by_id(handoff.id)
    assert (withdrawn.status, withdrawn.notes) == ("withdrawn", f"merged into {KEPT}")
    assert Lead.get_by_id(survivor.id).stage == survivor_stage
    page = app.test_client().get(accept)
    assert page.status_code == 200 and "already decided" in page.text
    assert "withdrawn" in page.text and f"merged into {KEPT}" in page.text
    assert "Accept as SQL" not in page.text

    done = escalation.sweep(settings=runtime.settings, now=now + timedelta(hours=10))
    chased = {row.handoff_id for row in OutboxEmail.select().where(
        OutboxEmail.template.in_(["sla_reminder", "sla_escalation"]))}
    assert handoff.id not in chased
    assert done["remind"] == done["escalate"] == (1 if survivor_stage == "mql" else 0)

    assert history(survivor.id) == before + [
        (None, "lead", "captured from t"), ("lead", "mql", "promoted"),
        ("mql", "lead", f"handoff withdrawn: merged into {KEPT}")], \
        "the merged lead's history moves; the survivor's stage did not change"
    assert merge_audit()["handoff"] == {"id": handoff.id, "outcome": "withdrawn",
                                        "rep": rep.email}
    assert AuditEvent.get(AuditEvent.action == "withdraw").subject == f"handoff:{handoff.id}"


def test_enrollments_move_and_only_the_survivors_runs(make_app, rep, smtp):
    app = make_app(**NURTURE)
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        survivor = rejected_lead(app, rep, email=KEPT)
        merged = rejected_lead(app, rep, email=DUPLICATE)
        own = Enrollment.get(Enrollment.lead == survivor.id)
        theirs = Enrollment.get(Enrollment.lead == merged.id)

        merge_leads(survivor.id, merged.id, actor="mia@example.com", now=utcnow())

        enrollments = {row.id: (row.lead_id, row.status, row.stop_reason)
                       for row in Enrollment.select()}
        assert enrollments == {own.id: (survivor.id, "active", ""),
                               theirs.id: (survivor.id, "stopped", "merged")}
        assert merge_audit()["enrollments"] == {"moved": 1, "stopped": 1}
        clock.move_to(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        sweep()
    assert [m["To"] for m in nurture_mail(smtp)] == [f"Ada <{KEPT}>"]


def test_no_nurture_after_merging_into_an_sql(make_app, rep, smtp):
    app = make_app(**NURTURE)
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        survivor = outbound_sql(KEPT, rep, utcnow())
        merged = rejected_lead(app, rep, email=DUPLICATE)
        enrollment = Enrollment.get(Enrollment.lead == merged.id)

        merge_leads(survivor.id, merged.id, actor="mia@example.com", now=utcnow())

        moved = Enrollment.get_by_id(enrollment.id)
        assert (moved.lead_id, moved.status, moved.stop_reason) == (
            survivor.id, "stopped", "merged")
        assert Lead.get_by_id(survivor.id).stage == "sql"
        for days in (5, 12, 30):
            clock.move_to(FRIDAY_EVENING + timedelta(days=days))
            sweep()
    assert nurture_mail(smtp) == []


def test_earlier_merges_move_with_the_merged_lead(app, now):
    first, second, third = (new_lead(email, at=now, **CONTACT) for email in (KEPT, DUPLICATE,
                                                              "hopper@navy.example.com"))
    merge_leads(second.id, third.id, actor="mia@example.com", now=now)
    merge_leads(first.id, second.id, actor="mia@example.com", now=now)
    assert sorted(m.merged_email for m in Lead.get_by_id(first.id).merges) == [
        DUPLICATE, "hopper@navy.example.com"]
