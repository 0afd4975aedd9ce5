"""Every manager action through the panel's HTTP interface."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service import lifecycle
from service.accounts.users import create_user
from service.core.models import AuditEvent, Definition, Handoff, Lead, OutboxEmail, Rep
from tests.conftest import PASSWORD, csrf_token, log_in, logged_in
from tests.factories import new_lead, promoted, rep_in_team


@pytest.fixture
def manager(app, now):
    return logged_in(app, "sam@example.com", "sales_manager", now)


def run_action(client, view: str, action: str, ids, form: dict | None = None):
    home = client.get("/admin/")
    response = client.post(f"/admin/{view}/action/", data={
        "action": action, "rowid": [str(i) for i in ids],
        "csrf_token": csrf_token(home.text)})
    if form is None:
        return response
    page = client.get(response.headers["Location"])
    return client.post(response.headers["Location"].split("?")[0],
                       data={**form, "csrf_token": csrf_token(page.text)})


def test_reassign(app, rep, manager, now):
    handoff = promoted(rep, at=now)
    jordan = Rep.create(email="jordan@example.com", name="Jordan Rep")
    done = run_action(manager, "pending", "reassign", [handoff.id],
                      {"ids": str(handoff.id), "rep": str(jordan.id)})
    assert done.status_code == 302
    old, new = Handoff.get_by_id(handoff.id), Handoff.get(Handoff.replaces == handoff.id)
    assert (old.status, new.status, new.rep.id) == ("withdrawn", "pending", jordan.id)
    assert old.reassigned_at is not None and Lead.get_by_id(old.lead_id).stage == "mql"
    sent = [(r.template, r.to_address) for r in OutboxEmail.select().order_by(OutboxEmail.id)]
    assert sent[-2:] == [("rep_handoff", "jordan@example.com"),
                         ("handoff_moved", "riley.rep@example.com")]
    assert AuditEvent.get().action == "reassign"


def test_withdraw(app, rep, manager, now):
    handoff = promoted(rep, at=now)
    run_action(manager, "pending", "withdraw", [handoff.id],
               {"ids": str(handoff.id), "reason": "Promoted by mistake"})
    assert Handoff.get_by_id(handoff.id).status == "withdrawn"
    assert Lead.get_by_id(handoff.lead_id).stage == "lead"


def test_outbound_sql(app, rep, manager):
    page = manager.get("/admin/outbound/")
    form = {"email": "Cold@Prospect.example.com", "first_name": "Cole", "rep": str(rep.id),
            "budget": "likely", "authority": "influencer", "need": "clear",
            "timeline": "unknown", "csrf_token": csrf_token(page.text)}
    refused = manager.post("/admin/outbound/", data=form)
    assert refused.status_code == 200 and "timeline is required" in refused.text
    assert Lead.select().count() == 0
    done = manager.post("/admin/outbound/", data={**form, "timeline": "lt_3m"})
    assert done.status_code == 302
    lead = Lead.get(Lead.email == "cold@prospect.example.com")
    handoff = lead.handoffs.get()
    assert (lead.stage, lead.source, handoff.origin, handoff.status) == (
        "sql", "outbound", "outbound", "accepted")


def test_win_recycle_reopen(app, rep, manager, now):
    won = promoted(rep, "won@example.com", at=now)
    lifecycle.accept(won.id, bant={"need": "clear"}, notes="", actor="r", now=now,
                     requires=[])
    lost = promoted(rep, "lost@example.com", at=now)
    lifecycle.accept(lost.id, bant={"need": "clear"}, notes="", actor="r", now=now,
                     requires=[])
    gone = promoted(rep, "gone@example.com", at=now)
    lifecycle.reject(gone.id, reason="not_a_fit", outcome="disqualify", notes="", actor="r",
                     now=now)
    run_action(manager, "lead", "win", [won.lead_id])
    run_action(manager, "lead", "recycle", [lost.lead_id])
    run_action(manager, "lead", "reopen", [gone.lead_id, won.lead_id])
    stages = {lead.email: lead.stage for lead in Lead.select()}
    assert stages == {"won@example.com": "customer", "lost@example.com": "nurture",
                      "gone@example.com": "lead"}
    assert [e.action for e in AuditEvent.select().order_by(AuditEvent.id)] == [
        "win", "recycle", "reopen"]
    log = manager.get("/admin/audit/").text
    assert "recycle" in log and "sam@example.com" in log


def test_marketer_cannot_use_manager_actions(app, rep, marketer, now):
    handoff = promoted(rep, at=now)
    client = app.test_client()
    log_in(client, "mia@example.com")
    run_action(client, "pending", "withdraw", [handoff.id])
    assert client.get(f"/admin/pending/withdraw/?ids={handoff.id}").status_code == 403
    assert client.get("/admin/outbound/").status_code == 403
    assert Handoff.get_by_id(handoff.id).status == "pending"


def test_handoff_lists_show_the_clock(app, rep, manager, now):
    from service.core.db import utcnow

    late = promoted(rep, new_lead("late@example.com", at=now),
                    at=utcnow() - timedelta(hours=30))
    fresh = promoted(rep, new_lead("fresh@example.com", at=now), at=utcnow())
    overdue = manager.get("/admin/overdue/").text
    assert "late@example.com" in overdue and "fresh@example.com" not in overdue
    assert "overdue by 6 h" in overdue
    assert "23 h 59 min left" in manager.get("/admin/pending/").text or \
        "24 h 00 min left" in manager.get("/admin/pending/").text
    assert late.id != fresh.id


def test_definitions_are_versioned(app, rep, manager, marketer, now):
    page = manager.get("/admin/definition/version/?kind=mql")
    for text in ("Asked for a demo.", "Asked for a demo, company over 50 people."):
        manager.post("/admin/definition/version/", data={
            "kind": "mql", "text": text, "agreed_by_marketing": "Mia",
            "agreed_by_sales": "Sam", "csrf_token": csrf_token(page.text)})
    assert [(d.version, d.text) for d in Definition.select().order_by(Definition.version)] == [
        (1, "Asked for a demo."), (2, "Asked for a demo, company over 50 people.")]
    handoff = promoted(rep, at=now)
    assert handoff.definition.version == 2
    listing = manager.get("/admin/definition/").text
    assert "company over 50 people" in listing and "/admin/definition/edit" not in listing


def test_promote_by_rules_from_the_panel(app, rep, marketer, now):
    lead = new_lead(at=now)
    client = app.test_client()
    log_in(client, "mia@example.com")
    form = client.get(f"/admin/lead/promote/?ids={lead.id}")
    assert "Assign by the rules" in form.text
    client.post("/admin/lead/promote/", data={"ids": str(lead.id), "rep": "", "note": "",
                                              "csrf_token": csrf_token(form.text)})
    assert Handoff.get().rep.id == rep.id


NO_REPS = ("There are no reps yet: add one under Sales → Reps (/admin/rep/new/) or "
           "POST /api/v1/reps.")


def promote_by_rules(client, lead):
    form = client.get(f"/admin/lead/promote/?ids={lead.id}")
    done = client.post("/admin/lead/promote/", data={
        "ids": str(lead.id), "rep": "", "note": "", "csrf_token": csrf_token(form.text)})
    return client.get(done.headers["Location"]).text


def test_promoting_with_no_reps_says_how_to_add_one(app, marketer, now):
    lead = new_lead(at=now)
    marketing = app.test_client()
    log_in(marketing, "mia@example.com")
    page = promote_by_rules(marketing, lead)
    assert f"Lead {lead.id}: {NO_REPS} (a sales manager or an admin can add reps)" in page
    create_user("root@example.com", role="admin", password=PASSWORD, now=now)
    admin = app.test_client()
    log_in(admin, "root@example.com")
    page = promote_by_rules(admin, lead)
    assert f'Lead {lead.id}: {NO_REPS} <a href="/admin/rep/new/">Add a rep</a>' in page
    assert admin.get("/admin/rep/new/").status_code == 200
    assert Lead.get_by_id(lead.id).stage == "lead" and Handoff.select().count() == 0


def test_promoting_when_every_rep_is_away_keeps_its_message(app, rep, marketer, now):
    Rep.update(out_of_office=True).execute()
    lead = new_lead(at=now)
    client = app.test_client()
    log_in(client, "mia@example.com")
    page = promote_by_rules(client, lead)
    assert "no rep in any team can take this lead: all are inactive, away or at capacity" in page
    assert "There are no reps" not in page


def test_rep_away_hands_over_pending_handoffs(app, rep, manager, now):
    jordan = rep_in_team("jordan@example.com")
    Rep.update(team=jordan.team).execute()
    first = promoted(rep, "a@example.com", at=now)
    second = promoted(rep, "b@example.com", at=now)
    Rep.update(out_of_office=True).where(Rep.id == rep.id).execute()
    run_action(manager, "rep", "hand_over", [rep.id])
    for handoff in (first, second):
        assert Handoff.get_by_id(handoff.id).status == "withdrawn"
        assert Handoff.get(Handoff.replaces == handoff.id).rep.id == jordan.id
