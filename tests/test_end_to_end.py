"""One lead from the web form to a decision, through the real components: the app, Valkey,
an RQ worker, SMTP on loopback, and the links taken out of the received email."""

from __future__ import annotations

import re

import pytest

from service.core.models import Handoff, Lead, StageChange
from tests.conftest import csrf_token, log_in, run_worker

BANT = {"budget": "likely", "authority": "decision_maker", "need": "clear", "timeline": "3_6m"}


def submit_form(client, email="Ada.Lovelace@Engines.example.com "):
    response = client.post("/f/contact", data={
        "email": email, "first_name": "Ada", "last_name": "Lovelace",
        "company": "Analytical Engines", "message": "Can we talk?"})
    assert response.status_code == 200
    return Lead.get(Lead.email == "ada.lovelace@engines.example.com")


def promote_in_panel(client, lead, rep, note="Asked for pricing twice"):
    assert log_in(client, "mia@example.com").status_code == 302
    listing = client.get("/admin/lead/")
    assert listing.status_code == 200 and lead.email in listing.text
    chosen = client.post("/admin/lead/action/", data={
        "action": "promote", "rowid": [str(lead.id)], "csrf_token": csrf_token(listing.text)})
    assert chosen.status_code == 302
    form = client.get(chosen.headers["Location"])
    assert "Promote to MQL" in form.text and lead.email in form.text
    done = client.post("/admin/lead/promote/", data={
        "ids": str(lead.id), "rep": str(rep.id), "note": note,
        "csrf_token": csrf_token(form.text)})
    assert done.status_code == 302


def link_from(text: str, action: str) -> str:
    label = "Accept (with BANT):" if action == "accept" else "Reject (with a reason):"
    url = re.search(re.escape(label) + r"\s+(\S+)", text).group(1)
    assert url.startswith("http://localhost/h/")
    return url.removeprefix("http://localhost")


def handoff_email(app, smtp, rep, marketer):
    """Form → panel promotion → worker → SMTP; return the lead and the email text."""
    client = app.test_client()
    lead = submit_form(client)
    promote_in_panel(client, lead, rep)
    assert smtp.messages == []
    run_worker()
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "Riley Rep <riley.rep@example.com>"
    assert "Ada Lovelace" in message["Subject"]
    assert message.get_body(("html",)).get_content().count("/h/") == 2
    return lead, smtp.text()


def stages(lead) -> list[tuple]:
    rows = StageChange.select().where(StageChange.lead == lead.id).order_by(StageChange.id)
    return [(row.from_stage, row.to_stage) for row in rows]


def test_accept_path(app, smtp, rep, marketer):
    lead, text = handoff_email(app, smtp, rep, marketer)
    assert "Asked for pricing twice" in text
    rep_browser = app.test_client()
    path = link_from(text, "accept")
    for _ in range(3):
        page = rep_browser.get(path)
        assert page.status_code == 200 and "Accept as SQL" in page.text
    assert Lead.get_by_id(lead.id).stage == "mql"
    assert Handoff.get(Handoff.lead == lead.id).status == "pending"

    answer = rep_browser.post(path, data={**BANT, "notes": "Call booked",
                                          "csrf_token": csrf_token(page.text)})
    assert answer.status_code == 200 and "accepted" in answer.text
    handoff = Handoff.get(Handoff.lead == lead.id)
    assert (handoff.status, handoff.budget, handoff.timeline) == ("accepted", "likely", "3_6m")
    assert handoff.decided_by == "riley.rep@example.com" and handoff.sla_met is True
    assert Lead.get_by_id(lead.id).stage == "sql"
    assert stages(lead) == [(None, "lead"), ("lead", "mql"), ("mql", "sql")]


@pytest.mark.parametrize("reason, stage", [("not_ready", "nurture"),
                                           ("not_a_fit", "disqualified")])
def test_reject_path(app, smtp, rep, marketer, reason, stage):
    lead, text = handoff_email(app, smtp, rep, marketer)
    rep_browser = app.test_client()
    path = link_from(text, "reject")
    page = rep_browser.get(path)
    assert page.status_code == 200 and "Not ready to buy yet" in page.text
    answer = rep_browser.post(path, data={"reason": reason, "notes": "Maybe in Q3",
                                          "csrf_token": csrf_token(page.text)})
    assert answer.status_code == 200
    handoff = Handoff.get(Handoff.lead == lead.id)
    assert (handoff.status, handoff.reason) == ("rejected", reason)
    assert Lead.get_by_id(lead.id).stage == stage
    assert stages(lead) == [(None, "lead"), ("lead", "mql"), ("mql", stage)]


def test_second_decision_changes_nothing(app, smtp, rep, marketer):
    lead, text = handoff_email(app, smtp, rep, marketer)
    rep_browser = app.test_client()
    accept, reject = link_from(text, "accept"), link_from(text, "reject")
    page = rep_browser.get(accept)
    token = csrf_token(page.text)
    assert rep_browser.post(accept, data={**BANT, "csrf_token": token}).status_code == 200

    again = rep_browser.post(reject, data={"reason": "not_a_fit", "csrf_token": token})
    assert again.status_code == 409
    assert "already decided" in again.text and "riley.rep@example.com" in again.text
    shown = rep_browser.get(reject)
    assert shown.status_code == 200 and "already decided" in shown.text
    assert Handoff.get(Handoff.lead == lead.id).status == "accepted"
    assert Lead.get_by_id(lead.id).stage == "sql"
