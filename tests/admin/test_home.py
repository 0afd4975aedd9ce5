"""The marketer's home (/admin/): each "needs a decision today" section lists the right items
and nothing else, with its action one click away; the first-run checklist ticks itself and
goes away; empty states say what to do next; the charts carry text alternatives; no query
string makes the page fail."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import expect

from service import lifecycle
from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import Handoff, InboundEmail, IntegrationKey, Lead, Team, User
from service.core.runtime import runtime
from service.core.scores import Policy
from service.core.statuses import InboundStatus
from service.leads.definitions import add_definition
from tests.admin.test_browser import browser_page, log_in_page, shot  # noqa: F401
from tests.conftest import PASSWORD, log_in, logged_in
from tests.factories import new_lead, promoted, record_activity, rep_in_team


@pytest.fixture
def clock(now):
    with time_machine.travel(now, tick=False) as traveller:
        yield traveller


def section(page: str, name: str) -> str:
    match = re.search(rf'<section[^>]*id="today-{name}".*?</section>', page, re.S)
    assert match, name
    return match.group(0)


def hot_lead(email: str, now, *types: str) -> Lead:
    policy = Policy.from_settings(runtime.settings)
    for kind in types:
        record_activity(email, type=kind, source="t", occurred_at=now, now=now, policy=policy)
    return Lead.get(Lead.email == email)


def test_suggested_mqls_with_why_and_nothing_under_the_threshold(app, clock, now, rep):
    hot = hot_lead("hot@example.com", now, "contact_sales", "pricing_page_view",
                   "pricing_page_view", "page_view")
    hot_lead("cold@example.com", now, "page_view", "email_click")
    taken = hot_lead("taken@example.com", now, "contact_sales", "trial_signup")
    promoted(rep, taken, at=now)  # an MQL already: no longer a suggestion
    page = logged_in(app, "mia@example.com", "marketer", now).get("/admin/").text
    suggested = section(page, "suggested")
    assert "hot@example.com" in suggested
    assert "cold@example.com" not in suggested and "taken@example.com" not in suggested
    why = re.search(r'<span class="why">(.*?)</span>', suggested).group(1)
    assert why == "contact_sales 40 pts, pricing_page_view 20 pts, page_view 1 pts"
    assert f'name="ids" value="{hot.id}"' in suggested


def test_promote_from_home_hands_the_lead_to_a_rep(app, clock, now, rep):
    hot = hot_lead("hot@example.com", now, "contact_sales", "trial_signup")
    client = logged_in(app, "mia@example.com", "marketer", now)
    page = client.get("/admin/").text
    form = re.search(r'<form method="post" action="([^"]+)">\s*<input type="hidden" '
                     r'name="csrf_token" value="([^"]+)">\s*<input type="hidden" name="ids" '
                     rf'value="{hot.id}">', section(page, "suggested"))
    answer = client.post(form.group(1), data={"csrf_token": form.group(2), "ids": hot.id,
                                              "rep": ""})
    assert answer.status_code == 302
    handoff = Handoff.get(Handoff.lead == hot.id)
    assert (handoff.rep_id, handoff.promoted_by, handoff.status) == (rep.id, "mia@example.com",
                                                                     "pending")
    assert Lead.get_by_id(hot.id).stage == "mql"
    assert "hot@example.com" not in section(client.get("/admin/").text, "suggested")
    refused = client.post(form.group(1), data={"ids": hot.id, "rep": ""})  # no CSRF token
    assert refused.status_code == 400 and Handoff.select().count() == 1


@pytest.fixture
def overdue_world(app, now, rep):
    """Handoffs to riley (managed by sam) and to jordan (team of pat): some past due."""
    jordan = rep_in_team("jordan@example.com", team="NA", manager_email="pat@example.com")
    late = now - timedelta(hours=5)
    return {
        "mine": promoted(rep, "mine@example.com", at=late, actor="mia@example.com",
                         window=timedelta(hours=1)),
        "theirs": promoted(jordan, "theirs@example.com", at=late, actor="max@example.com",
                           window=timedelta(hours=1)),
        "in_time": promoted(rep, "fresh@example.com", at=late, actor="mia@example.com",
                            window=timedelta(hours=24)),
        "decided": promoted(jordan, "done@example.com", at=late, actor="mia@example.com",
                            window=timedelta(hours=1)),
    }


def overdue_leads(client) -> set[str]:
    overdue = section(client.get("/admin/").text, "overdue")
    return set(re.findall(r'href="/admin/lead/details/\?id=\d+">([^<]+)</a>', overdue))


def test_overdue_handoffs_by_whose_they_are(app, clock, now, overdue_world):
    lifecycle.withdraw(overdue_world["decided"].id, actor="m", reason="", now=now)
    marketer = logged_in(app, "mia@example.com", "marketer", now)
    assert overdue_leads(marketer) == {"mine@example.com"}
    assert "Reassign" not in section(marketer.get("/admin/").text, "overdue")
    other = logged_in(app, "max@example.com", "marketer", now)
    assert overdue_leads(other) == {"theirs@example.com"}
    pat = logged_in(app, "pat@example.com", "sales_manager", now)  # jordan's team
    assert overdue_leads(pat) == {"theirs@example.com"}
    sam = logged_in(app, "sam@example.com", "sales_manager", now)  # riley's manager
    assert overdue_leads(sam) == {"mine@example.com"}
    nobody = logged_in(app, "new.manager@example.com", "sales_manager", now)
    assert overdue_leads(nobody) == set()
    assert "manager email" in section(nobody.get("/admin/").text, "overdue")
    assert "manager email" not in section(sam.get("/admin/").text, "overdue")
    admin = logged_in(app, "root@example.com", "admin", now)
    overdue = section(admin.get("/admin/").text, "overdue")
    assert overdue_leads(admin) == {"mine@example.com", "theirs@example.com"}
    mine = overdue_world["mine"].id
    assert f'href="/admin/pending/reassign/?ids={mine}"' in overdue
    assert sam.get(f"/admin/pending/reassign/?ids={mine}").status_code == 200


def test_replies_waiting_and_re_engaged_leads(app, clock, now):
    lead = new_lead("back@example.com", at=now - timedelta(days=30))
    gone = new_lead("moved.on@example.com", at=now - timedelta(days=30))
    Lead.update(stage="nurture", re_engaged_at=now).where(Lead.id == lead.id).execute()
    Lead.update(re_engaged_at=now).where(Lead.id == gone.id).execute()  # still a lead
    emails = {status: InboundEmail.create(
        channel="imap", dedup_key=status, received_at=now, from_address=f"{status}@example.com",
        subject=f"About {status}", status=status)
        for status in (InboundStatus.HELD, InboundStatus.UNMATCHED, InboundStatus.POSTED,
                       InboundStatus.DISCARDED)}
    page = logged_in(app, "mia@example.com", "marketer", now).get("/admin/").text
    replies = section(page, "replies")
    assert "held@example.com" in replies and "unmatched@example.com" in replies
    assert "posted@example.com" not in replies and "discarded@example.com" not in replies
    held = emails[InboundStatus.HELD].id
    assert f'href="/admin/inbound/details/?id={held}"' in replies
    back = section(page, "reengaged")
    assert "back@example.com" in back and "moved.on@example.com" not in back
    assert f'name="ids" value="{lead.id}"' in back


def test_empty_states_say_what_to_do_next(app, clock, now):
    page = logged_in(app, "mia@example.com", "marketer", now).get("/admin/").text
    for name, advice in (("suggested", "connect a form"), ("overdue", "No handoff is past"),
                         ("replies", "No email is waiting"),
                         ("reengaged", "nurture sequence")):
        assert advice in section(page, name), name
    assert "No MQLs in this range yet. Promote a suggested lead" in page
    assert "No handoffs in this range yet. Add reps" in page


def steps(page: str) -> dict[str, str]:
    return {key: state for state, key in
            re.findall(r'<li class="step (done|todo)" data-step="(\w+)">', page)}


def test_the_first_run_checklist_ticks_and_goes_away(app, clock, now):
    admin = logged_in(app, "root@example.com", "admin", now)
    page = admin.get("/admin/").text
    assert 'id="first-run"' in page
    assert steps(page) == {"reps": "todo", "definition": "todo", "users": "todo",
                           "connect": "todo"}
    assert 'href="/admin/rep/"' in page and 'href="/admin/form_snippets/"' in page
    rep_in_team("riley@example.com")
    assert steps(admin.get("/admin/").text)["reps"] == "done"
    add_definition("mql", text="Asked for a demo", agreed_by_marketing="mia",
                   agreed_by_sales="sam", agreed_at=now)
    create_user("mia@example.com", role="marketer", password=PASSWORD, now=now)
    assert steps(admin.get("/admin/").text) == {"reps": "done", "definition": "done",
                                                "users": "done", "connect": "todo"}
    IntegrationKey.create(kind="webhook", source="website", secret="s")
    assert 'id="first-run"' not in admin.get("/admin/").text


def test_a_first_lead_counts_as_connected(app, clock, now):
    admin = logged_in(app, "root@example.com", "admin", now)
    Team.create(name="EMEA")
    new_lead("first@example.com", at=now)
    assert steps(admin.get("/admin/").text)["connect"] == "done"
    assert steps(admin.get("/admin/").text)["reps"] == "todo"  # a team without reps


def test_charts_name_themselves_and_link_their_data(app, clock, now, rep):
    promoted(rep, "ada@example.com", at=now - timedelta(days=3), window=timedelta(hours=1))
    page = logged_in(app, "mia@example.com", "marketer", now).get("/admin/").text
    charts = re.findall(r'<svg class="chart"[^>]*aria-labelledby="([\w-]+)-title \1-desc"', page)
    assert {"chart-mqls", "chart-conversion", "chart-sla", "chart-campaigns"} <= set(charts)
    for chart in charts:
        assert f'<title id="{chart}-title">' in page and f'<desc id="{chart}-desc">' in page
    assert 'class="band"' in page and "healthy" in page
    assert 'class="reference"' not in page or "benchmark</text>" in page
    for chart in ("mqls", "conversion", "sla", "campaigns"):
        assert f"/admin/report.csv?chart={chart}&amp;" in page
    csv = app.test_client()
    assert log_in(csv, "mia@example.com").status_code == 302
    assert csv.get("/admin/report.csv?chart=campaigns").text.startswith(
        "utm_source,utm_campaign,mqls,sqls,rate")


QUERY = st.dictionaries(
    st.sampled_from(["period", "start", "end", "chart", "page", "x"]),
    st.one_of(st.text(max_size=30), st.dates().map(str),
              st.sampled_from(["day", "week", "month", "quarter", "year", "0000-01-01",
                               "9999-12-31", "2026-02-30"])), max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(query=QUERY)
def test_no_query_string_makes_the_home_page_fail(app, now, query):
    if not User.select().where(User.email == "admin@example.com").exists():
        create_user("admin@example.com", role="admin", password=PASSWORD, now=now)
    client = app.test_client()
    assert log_in(client, "admin@example.com").status_code == 302
    assert client.get("/admin/", query_string=query).status_code in (200, 400)  # 400: guard
    assert client.get("/admin/report.csv", query_string=query).status_code in (200, 400, 404)


def test_in_a_browser_the_marketer_promotes_from_home(app, rep, live_server,
                                                       browser_page):  # noqa: F811
    moment = utcnow()
    hot = hot_lead("hot@example.com", moment, "contact_sales", "pricing_page_view",
                   "trial_signup")
    create_user("mia@example.com", role="marketer", password=PASSWORD, now=moment)
    page = browser_page
    log_in_page(page, live_server, "mia@example.com")
    suggested = page.locator("#today-suggested")
    expect(suggested.locator(".why")).to_have_text(
        "contact_sales 40 pts, trial_signup 30 pts, pricing_page_view 10 pts")
    expect(page.locator("#first-run")).to_be_visible()
    shot(page, "home-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(suggested.get_by_role("button", name="Promote")).to_be_visible()
    shot(page, "home-390")
    suggested.get_by_role("button", name="Promote").click()
    expect(page.locator(".alert-success")).to_contain_text("Promoted 1 lead(s) to MQL")
    assert Lead.get_by_id(hot.id).stage == "mql"
    page.goto(f"{live_server}/admin/")
    expect(page.locator("#today-suggested .empty")).to_be_visible()


def my_overdue_list(client) -> set[str]:
    page = client.get("/admin/overdue/?flt0_mine_equals=1")
    assert page.status_code == 200
    return set(re.findall(r'<td class="col-lead">\s*(\w+)@example\.com', page.text))


def test_home_and_my_overdue_show_the_same_handoffs(app, clock, now, overdue_world):
    """One rule for both: a marketer's own promotions, a manager's reps' (none when they
    manage no one), an admin's all."""
    for email, role, expected in (
            ("mia@example.com", "marketer", {"mine", "done"}),
            ("max@example.com", "marketer", {"theirs"}),
            ("sam@example.com", "sales_manager", {"mine"}),
            ("pat@example.com", "sales_manager", {"theirs", "done"}),
            ("new.manager@example.com", "sales_manager", set()),
            ("root@example.com", "admin", {"mine", "theirs", "done"})):
        client = logged_in(app, email, role, now)
        assert my_overdue_list(client) == expected, email
        assert {lead.split("@")[0] for lead in overdue_leads(client)} == expected, email
