"""The lead page as a workspace (header and actions, one timeline, the score's breakdown,
nurture) and the lists people work in (filters, saved views, bulk actions)."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import lifecycle
from service.accounts.users import create_user
from service.core import links
from service.core.db import utcnow
from service.core.models import (
    Activity,
    Enrollment,
    Handoff,
    Lead,
    OutboxEmail,
    Rep,
    SavedView,
    StageChange,
)
from service.core.runtime import runtime
from service.core.scores import Policy
from service.handoffs import thread
from service.nurture import bounces
from service.nurture import sequences as nurture
from tests.conftest import PASSWORD, csrf_token, log_in
from tests.factories import (
    enrolled,
    new_lead,
    promoted,
    record_activity,
    rep_in_team,
    statements_run,
)


def client_as(app, email):
    client = app.test_client()
    assert log_in(client, email).status_code == 302
    return client


@pytest.fixture
def people(app, now):
    for email, role in (("mia@example.com", "marketer"), ("sam@example.com", "sales_manager"),
                        ("ana@example.com", "admin"), ("max@example.com", "marketer")):
        create_user(email, role=role, password=PASSWORD, now=now)


def kinds(page: str) -> list[str]:
    return re.findall(r'data-kind="(\w+)"', page)


def shown_actions(page: str) -> set[str]:
    header = page.split('class="lead-actions', 1)[1].split('class="row"', 1)[0]
    return set(re.findall(r'data-action="(\w+)"', header))


def test_the_lead_page_shows_every_kind_of_timeline_item(app, rep, people, now):
    with time_machine.travel(now, tick=False) as clock:
        enrollment = enrolled("ada@example.com", at=now, fields={"company": "Analytical"})
        lead = Lead.get_by_id(enrollment.lead_id)
        clock.move_to(enrollment.next_due_at)
        nurture.sweep(settings=runtime.settings, now=utcnow())
        email = OutboxEmail.get(OutboxEmail.lead == lead.id)
        token = links.click_token(app.secret_key, email.id, "https://example.com/guide",
                                  lead.public_id)
        assert app.test_client().get(f"/c/{token}").status_code == 302
        bounces.apply([bounces.ProviderEvent("ada@example.com", "soft_bounce", "mailbox full")],
                      provider="postmark", raw={}, settings=runtime.settings, now=utcnow())
        handoff = promoted(rep, lead, at=utcnow(), note="Asked for <b>pricing</b>")
        thread.post(handoff, author="rep", address=rep.email, name="Riley Rep",
                    body="Calling her <i>tomorrow</i>.", via="email",
                    settings=runtime.settings, now=utcnow())
        client = client_as(app, "mia@example.com")
        page = client.get(f"/admin/lead/details/?id={lead.id}").text
        assert set(kinds(page)) == {"activity", "email", "click", "email_event", "stage",
                                    "handoff", "enrollment"}
        times = [html.unescape(t) for t in re.findall(r'<tr class="timeline-\w+"[^>]*>\s*<td>'
                                                      r'<span class="text-nowrap" title="([^"]+)"',
                                                      page)]
        assert times == sorted(times, reverse=True), "newest first"
        assert "Calling her &lt;i&gt;tomorrow&lt;/i&gt;." in page and "<i>tomorrow" not in page
        assert "Asked for &lt;b&gt;pricing&lt;/b&gt;" in page
        assert "https://example.com/guide" in page and "mailbox full" in page
        assert 'class="lead-owner">Riley Rep &lt;riley.rep@example.com&gt;<' in page
        assert 'class="lead-company">Analytical<' in page
        assert re.search(r'class="sla-clock ">\s*23 h 59 min left|class="sla-clock ">2[34] h', page)
        clock.move_to(handoff.due_at + timedelta(hours=2, minutes=5))
        client = client_as(app, "mia@example.com")  # the session has ended meanwhile
        late = client.get(f"/admin/lead/details/?id={lead.id}").text
        assert "overdue by 2 h 05 min" in late
        assert "text-danger font-weight-bold\">overdue by 2 h 05 min" in late
        stopped = Enrollment.get_by_id(enrollment.id)
        assert f"step {stopped.step} · {stopped.status}" in late


def test_a_decided_handoff_shows_its_decision_and_bant(app, rep, people, now):
    handoff = promoted(rep, "bea@example.com", at=now)
    lifecycle.accept(handoff.id, bant={"budget": "likely", "need": "clear"},
                     notes="Good fit", actor=rep.email, now=now + timedelta(hours=1), requires=[])
    page = client_as(app, "sam@example.com").get(
        f"/admin/lead/details/?id={handoff.lead_id}").text
    assert "budget: likely · authority: unknown · need: clear" in page and "SLA met" in page
    assert "Good fit" in page


def test_the_score_breakdown_adds_up_to_the_score(app, people, now):
    policy = Policy.from_settings(runtime.settings)
    for days, kind in ((40, "page_view"), (20, "pricing_page_view"), (3, "contact_sales"),
                       (1, "pricing_page_view"), (0, "webinar_attended")):
        record_activity("cy@example.com", type=kind, source="t", now=now, policy=policy,
                        occurred_at=now - timedelta(days=days))
    lead = Lead.get(Lead.email == "cy@example.com")
    with time_machine.travel(now, tick=False):
        page = client_as(app, "mia@example.com").get(f"/admin/lead/details/?id={lead.id}").text
    table = page.split('class="table table-sm score-breakdown"', 1)[1].split("</table>", 1)[0]
    parts = [float(p) for p in re.findall(r'class="text-right points">([\d.]+)<', table)]
    total = float(re.search(r'class="text-right score-total">([\d.]+)<', table).group(1))
    score = policy.score(Lead.get_by_id(lead.id).score_log, now)
    assert len(parts) == 4  # one row per activity type
    assert sum(parts) == pytest.approx(total, abs=0.02)
    assert total == pytest.approx(score, abs=0.01) and total > 0
    assert 'data-type="pricing_page_view"><td>pricing_page_view</td><td class="text-right">2<' \
        in table


@pytest.mark.parametrize(("stage", "role", "expected"), [
    ("lead", "mia@example.com", {"promote", "enroll", "merge", "edit"}),
    ("lead", "sam@example.com", {"promote", "outbound"}),
    ("lead", "ana@example.com", {"promote", "enroll", "outbound", "merge", "edit"}),
    ("mql", "sam@example.com", {"reassign", "withdraw"}),
    ("mql", "mia@example.com", {"merge", "edit"}),
    ("sql", "sam@example.com", {"win", "recycle"}),
    ("sql", "mia@example.com", {"merge", "edit"}),
    ("disqualified", "sam@example.com", {"reopen"}),
    ("customer", "sam@example.com", set()),
])
def test_the_actions_shown_match_the_stage_and_the_role(app, rep, people, now, stage, role,
                                                        expected):
    lead = lead_at(stage, rep, now)
    page = client_as(app, role).get(f"/admin/lead/details/?id={lead.id}").text
    assert shown_actions(page) == expected


def lead_at(stage: str, rep: Rep, now) -> Lead:
    if stage == "lead":
        return new_lead("dee@example.com", at=now)
    handoff = promoted(rep, "dee@example.com", at=now)
    if stage in ("sql", "customer"):
        lifecycle.accept(handoff.id, bant={"need": "clear"}, notes="", actor="r", now=now,
                         requires=[])
    if stage == "customer":
        lifecycle.win(handoff.lead_id, actor="sam", now=now)
    if stage == "disqualified":
        lifecycle.reject(handoff.id, reason="no_fit", outcome="disqualify", notes="",
                         actor="r", now=now)
    return Lead.get_by_id(handoff.lead_id)


def post_header_action(client, lead_id: int, name: str):
    page = client.get(f"/admin/lead/details/?id={lead_id}").text
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>((?:(?!</form>).)*data-action="'
                     + name + r'")', page, re.S)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(2)))
    return client.post(html.unescape(form.group(1)), data=fields)


def test_the_header_actions_post_and_come_back_to_the_lead(app, rep, people, now):
    sql = lead_at("sql", rep, now)
    manager = client_as(app, "sam@example.com")
    done = post_header_action(manager, sql.id, "win")
    assert done.status_code == 302 and done.headers["Location"].endswith(
        f"/admin/lead/details/?id={sql.id}")
    assert Lead.get_by_id(sql.id).stage == "customer"
    enrollment = enrolled("eve@example.com", at=now)
    marketer = client_as(app, "mia@example.com")
    post_header_action(marketer, enrollment.lead_id, "stop_nurture")
    assert Enrollment.get_by_id(enrollment.id).status == "stopped"
    fresh = new_lead("fay@example.com", at=now)
    promote = post_header_action(marketer, fresh.id, "promote")
    assert f"/admin/lead/promote/?ids={fresh.id}" in promote.headers["Location"]
    refused = marketer.post("/admin/lead/action/", data={
        "action": "win", "rowid": str(sql.id),
        "csrf_token": csrf_token(marketer.get("/admin/lead/").text)})
    assert refused.status_code == 403


def test_a_lead_with_many_activities_shows_a_bounded_timeline(app, people, now):
    lead = new_lead("busy@example.com", at=now - timedelta(days=400))
    Activity.insert_many([{"lead": lead.id, "type": "page_view", "source": "t",
                           "occurred_at": now - timedelta(minutes=i), "properties": {}}
                          for i in range(3000)]).execute()
    client = client_as(app, "mia@example.com")
    page = client.get(f"/admin/lead/details/?id={lead.id}").text
    assert len(kinds(page)) == 100
    older = html.unescape(re.search(r'class="btn btn-sm btn-outline-secondary timeline-older" '
                                    r'href="([^"]+)"', page).group(1))
    second = client.get(older).text
    assert len(kinds(second)) == 100
    first_times = re.findall(r'title="([^"]+)">', page)
    second_times = re.findall(r'title="([^"]+)">', second)
    assert max(second_times) < min(t for t in first_times if t[:2] == "20")
    assert client.get(f"/admin/lead/details/?id={lead.id}&before=abc").status_code == 400
    assert client.get(f"/admin/lead/details/?id={lead.id}&before=1").status_code == 200


@pytest.fixture
def spread(app, now):
    """Leads across reps, teams, sources and campaigns, with pending handoffs due at
    different times."""
    north = rep_in_team("north@example.com", team="North", name="Nora North",
                        manager_email="sam@example.com")
    south = rep_in_team("south@example.com", team="South", name="Sid South")
    made = {}
    for name, rep, source, campaign, due in (
            ("a", north, "form:contact", "spring", timedelta(hours=-2)),
            ("b", north, "import", "summer", timedelta(hours=3)),
            ("c", south, "form:contact", "summer", timedelta(days=30)),
            ("d", None, "import", "spring", None)):
        lead = new_lead(f"{name}@example.com", at=now - timedelta(days=1), source=source,
                        fields={"utm_campaign": campaign, "utm_source": "news"})
        if rep is not None:
            lifecycle.promote(lead.id, rep_id=rep.id, actor="mia@example.com", note="",
                              now=now - timedelta(hours=1), schedule=_schedule(now + due))
        made[name] = lead.id
    return {"leads": made, "north": north, "south": south}


def _schedule(due):
    from service.handoffs.sla import Schedule
    return Schedule(due, None, None, None)


def listed(client, path: str) -> set[str]:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return set(re.findall(r"(?<![\w.])([a-d])@example\.com", page.text))


def test_each_filter_narrows_the_leads_list(app, people, spread, now):
    north, south = spread["north"], spread["south"]
    with time_machine.travel(now, tick=False):
        client = client_as(app, "mia@example.com")
        cases = {
            "flt0_campaign_equals=spring": {"a", "d"},
            "flt0_source_equals=import": {"b", "d"},
            f"flt0_owner_rep_equals={north.id}": {"a", "b"},
            f"flt0_team_equals={south.team_id}": {"c"},
            "flt0_stage_equals=lead": {"d"},
            "flt0_handoff_due_equals=overdue": {"a"},
            "flt0_handoff_due_equals=today": {"b"},
            "flt0_utm_source_equals=news": {"a", "b", "c", "d"},
            f"flt0_campaign_equals=summer&flt1_team_equals={north.team_id}": {"b"},
        }
        for query, expected in cases.items():
            assert listed(client, f"/admin/lead/?{query}") == expected, query
        assert listed(client, "/admin/lead/?flt0_campaign_equals=nosuch") == set()
        page = client.get("/admin/lead/?flt0_owner_rep_equals=999")
        assert page.status_code == 200 and "Invalid Filter Value" in page.text


def test_each_filter_narrows_the_handoff_lists(app, people, spread, now):
    north, south = spread["north"], spread["south"]
    with time_machine.travel(now, tick=False):
        client = client_as(app, "sam@example.com")
        assert listed(client, f"/admin/pending/?flt0_rep_equals={south.id}") == {"c"}
        assert listed(client, f"/admin/handoff/?flt0_team_equals={north.team_id}") == {"a", "b"}
        assert listed(client, "/admin/pending/?flt0_campaign_equals=summer") == {"b", "c"}
        assert listed(client, "/admin/pending/?flt0_source_equals=form:contact") == {"a", "c"}
        assert listed(client, "/admin/pending/?flt0_deadline_equals=overdue") == {"a"}
        assert listed(client, "/admin/pending/?flt0_deadline_equals=today") == {"b"}
        assert listed(client, "/admin/handoff/?flt0_lead_stage_equals=mql") == {"a", "b", "c"}
        assert listed(client, "/admin/overdue/") == {"a"}
        # "My overdue": a manager's teams (Nora's manager is sam); a marketer's promotions
        assert listed(client, "/admin/overdue/?flt0_mine_equals=1") == {"a"}
        assert listed(client_as(app, "mia@example.com"),
                      "/admin/pending/?flt0_mine_equals=1") == {"a", "b", "c"}
        assert listed(client_as(app, "max@example.com"),
                      "/admin/pending/?flt0_mine_equals=1") == set()


def test_enrollment_and_suggested_filters(app, people, now):
    policy = Policy.from_settings(runtime.settings)
    with time_machine.travel(now, tick=False):
        first = enrolled("a@example.com", at=now, fields={"utm_campaign": "spring"})
        enrolled("b@example.com", at=now, fields={"utm_campaign": "summer"})
        client = client_as(app, "mia@example.com")
        assert listed(client, "/admin/enrollment/?flt0_campaign_equals=spring") == {"a"}
        assert listed(client, "/admin/enrollment/?flt0_next_step_due_equals=overdue") == set()
        assert first.next_due_at > now
        for name, days, campaign in (("c", 20, "spring"), ("d", 1, "summer")):
            for _ in range(8):
                record_activity(f"{name}@example.com", type="contact_sales", source="t",
                                occurred_at=now - timedelta(days=days), now=now,
                                policy=policy, fields={"utm_campaign": campaign})
        suggested = listed(client, "/admin/suggested/")
        assert {"c", "d"} <= suggested
        assert listed(client, "/admin/suggested/?campaign=spring") == {"c"}
        assert listed(client, "/admin/suggested/?since=week") == {"d"}
        assert client.get("/admin/suggested/?since=year").status_code == 400


def save_view(client, path: str, name: str):
    page = client.get(path).text
    form = page.split('class="form-inline ml-auto save-view"', 1)[1].split("</form>", 1)[0]
    fields = {k: html.unescape(v) for k, v in re.findall(r'name="(\w+)"[^>]*value="([^"]*)"',
                                                        form)}
    return client.post("/admin/saved/", data={**fields, "name": name})


def test_saved_views_round_trip_and_stay_private(app, people, spread):
    mia, max_ = client_as(app, "mia@example.com"), client_as(app, "max@example.com")
    saved = save_view(mia, "/admin/lead/?flt0_campaign_equals=spring&sort=2&evil=1"
                      "&flt0_nosuch_equals=1", "Spring <campaign>")
    assert saved.status_code == 302
    row = SavedView.get()
    assert row.query == "flt0_campaign_equals=spring&sort=2"
    assert saved.headers["Location"].endswith("/admin/lead/?flt0_campaign_equals=spring&sort=2")
    page = mia.get("/admin/lead/").text
    assert "Spring &lt;campaign&gt;" in page and "Spring <campaign>" not in page
    assert 'href="/admin/lead/?flt0_campaign_equals=spring&amp;sort=2">' in page
    opened = mia.get(f"/admin/saved/{row.id}")
    assert opened.headers["Location"].endswith("?flt0_campaign_equals=spring&sort=2")
    assert listed(mia, opened.headers["Location"]) == {"a", "d"}
    assert "Spring" not in max_.get("/admin/lead/").text
    assert max_.get(f"/admin/saved/{row.id}").status_code == 404
    token = csrf_token(max_.get("/admin/lead/").text)
    assert max_.post(f"/admin/saved/{row.id}/delete",
                     data={"csrf_token": token}).status_code == 404
    assert SavedView.select().count() == 1
    for builtin in ("My overdue", "Suggested this week"):
        assert builtin in page and builtin in max_.get("/admin/pending/").text
    again = save_view(mia, "/admin/lead/?flt0_campaign_equals=summer", "Spring <campaign>")
    assert again.status_code == 302 and SavedView.get().query == "flt0_campaign_equals=summer"
    token = csrf_token(mia.get("/admin/lead/").text)
    assert mia.post(f"/admin/saved/{row.id}/delete", data={"csrf_token": token}
                    ).status_code == 302
    assert SavedView.select().count() == 0
    assert mia.post("/admin/saved/", data={"csrf_token": token, "endpoint": "user",
                                           "name": "x"}).status_code == 404


def test_saved_views_on_the_handoff_and_suggested_lists(app, people, spread):
    client = client_as(app, "sam@example.com")
    save_view(client, "/admin/overdue/?flt0_team_equals=1&flt0_nosuch_equals=2&desc=1",
              "Team one")
    assert SavedView.get().query == "flt0_team_equals=1&desc=1"
    save_view(client, "/admin/suggested/?since=week&campaign=spring&sort=9", "Hot")
    assert SavedView.get(SavedView.name == "Hot").query == "since=week&campaign=spring"
    assert "Hot" in client.get("/admin/suggested/").text


def test_the_search_box_says_what_it_searches(app, people):
    client = client_as(app, "mia@example.com")
    for path in ("/admin/lead/", "/admin/suppression/"):
        page = client.get(path).text
        assert 'placeholder="None"' not in page
    assert 'placeholder="Search email, company, last name"' in client.get("/admin/lead/").text


def test_bulk_stop_nurture_and_reassign(app, rep, people, now):
    enrollment = enrolled("gil@example.com", at=now)
    marketer = client_as(app, "mia@example.com")
    token = csrf_token(marketer.get("/admin/lead/").text)
    marketer.post("/admin/lead/action/", data={"action": "stop_nurture",
                                               "rowid": [str(enrollment.lead_id)],
                                               "csrf_token": token})
    assert Enrollment.get_by_id(enrollment.id).status == "stopped"
    handoff = promoted(rep, "hal@example.com", at=now)
    other = Rep.create(email="jo@example.com", name="Jo")
    manager = client_as(app, "sam@example.com")
    token = csrf_token(manager.get("/admin/lead/").text)
    chosen = manager.post("/admin/lead/action/", data={
        "action": "reassign", "rowid": [str(handoff.lead_id)], "csrf_token": token})
    assert f"/admin/pending/reassign/?ids={handoff.id}" in chosen.headers["Location"]
    form = manager.get(chosen.headers["Location"]).text
    manager.post("/admin/pending/reassign/", data={"ids": str(handoff.id), "rep": str(other.id),
                                                   "csrf_token": csrf_token(form)})
    assert Handoff.get(Handoff.replaces == handoff.id).rep_id == other.id
    none = manager.post("/admin/lead/action/", data={
        "action": "reassign", "rowid": [str(enrollment.lead_id)], "csrf_token": token},
        follow_redirects=True)
    assert "None of the selected leads has a pending handoff." in none.text


QUERY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
LIST_PATHS = ["/admin/lead/", "/admin/pending/", "/admin/overdue/", "/admin/handoff/",
              "/admin/enrollment/", "/admin/suggested/", "/admin/lead/details/"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(LIST_PATHS),
       pairs=st.lists(st.tuples(st.sampled_from([
           "flt0_campaign_equals", "flt1_team_equals", "flt0_owner_rep_equals",
           "flt0_deadline_equals", "flt0_handoff_due_equals", "flt0_mine_equals", "flt2_rep_equals",
           "flt0_next_step_due_equals", "sort", "desc", "search", "page", "since", "campaign",
           "source", "before", "id", "flt_x", "fltx_y_equals"]) | QUERY_TEXT, QUERY_TEXT),
           max_size=4))
def test_arbitrary_query_strings_never_give_a_server_error(workspace_client, path, pairs):
    client, lead_id = workspace_client
    query = [("id", str(lead_id))] if path.endswith("details/") else []
    response = client.get(path, query_string=query + pairs)
    assert response.status_code < 500, (path, pairs, response.status_code)
    if response.status_code >= 400:
        assert response.text.strip()


@pytest.fixture
def workspace_client(app, rep, people, now):
    handoff = promoted(rep, "ivy@example.com", at=now)
    return client_as(app, "sam@example.com"), handoff.lead_id


def timeline_walk(client, lead_id: int) -> list[str]:
    """The kinds of every timeline item over all the lead page's pages."""
    url, shown = f"/admin/lead/details/?id={lead_id}", []
    for _ in range(20):
        page = client.get(url).text
        shown += kinds(page)
        older = re.search(r'timeline-older" href="([^"]+)"', page)
        if older is None:
            return shown
        url = html.unescape(older.group(1))
    raise AssertionError("the timeline never ends")


def test_a_promotion_at_the_page_boundary_shows_its_handoff_and_stage_change(app, rep, people,
                                                                            now):
    """A promotion writes its handoff and stage change at one instant; the page boundary
    falling between them loses neither."""
    lead = new_lead("ada@example.com", at=now - timedelta(days=3), activity=None)
    promoted(rep, lead, at=now - timedelta(days=2))
    Activity.insert_many([{"lead": lead.id, "type": "page_view", "source": "t",
                           "occurred_at": now - timedelta(hours=1), "properties": {"i": i}}
                          for i in range(99)]).execute()
    shown = timeline_walk(client_as(app, "mia@example.com"), lead.id)
    assert shown.count("activity") == 99
    assert shown.count("handoff") == 1
    assert shown.count("stage") == 2  # captured, promoted


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ties=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=6),
       page=st.integers(1, 5))
def test_timeline_pages_show_every_item_once_whatever_the_ties(app, now, monkeypatch, ties,
                                                                page):
    """Activities and stage changes sharing instants, across any page size: each item on
    exactly one page."""
    from admin import lead_page
    monkeypatch.setattr(lead_page, "PAGE", page)
    lead = new_lead(f"tie{Lead.select().count()}@example.com", at=now, activity=None)
    for instant, (activities, changes) in enumerate(ties):
        at = now - timedelta(minutes=instant // 2)  # pairs of instants share a time
        for i in range(activities):
            Activity.create(lead=lead.id, type="page_view", source="t", occurred_at=at,
                            properties={"i": i})
        for _ in range(changes):
            StageChange.create(lead=lead.id, to_stage="lead", at=at, actor="t")
    expected = sorted([("activity", a.id) for a in Activity.select().where(
        Activity.lead == lead.id)] + [("stage", s.id) for s in StageChange.select().where(
            StageChange.lead == lead.id)])
    policy, cursor, seen = Policy.from_settings(runtime.settings), None, []
    for _ in range(len(expected) + 1):
        found = lead_page.timeline(lead, lead_page.before_from(cursor), now, policy)
        seen += [(item.kind, item.row.id) for item in found["items"]]
        cursor = found["older"]
        if cursor is None:
            break
    assert sorted(seen) == expected


def test_owner_and_team_filters_mean_the_current_owner(app, people, now):
    """Owner (rep) and Team match the rep of the lead's latest handoff (the Owner column),
    never a former one; with Handoff due, all three speak of that same handoff."""
    first = rep_in_team("first@example.com", team="North")
    second = rep_in_team("second@example.com", team="South")
    with time_machine.travel(now, tick=False):
        handoff = promoted(first, "a@example.com", at=now - timedelta(days=5))
        lifecycle.reassign(handoff.id, rep_id=second.id, actor="sam@example.com",
                           now=now - timedelta(days=4), schedule=_schedule(now - timedelta(
                               days=1)))
        client = client_as(app, "mia@example.com")
        assert listed(client, f"/admin/lead/?flt0_owner_rep_equals={first.id}") == set()
        assert listed(client, f"/admin/lead/?flt0_team_equals={first.team_id}") == set()
        assert listed(client, f"/admin/lead/?flt0_owner_rep_equals={second.id}") == {"a"}
        assert listed(client, f"/admin/lead/?flt0_team_equals={second.team_id}") == {"a"}
        assert listed(client, f"/admin/lead/?flt0_owner_rep_equals={first.id}"
                              "&flt1_handoff_due_equals=overdue") == set()
        assert listed(client, f"/admin/lead/?flt0_owner_rep_equals={second.id}"
                              "&flt1_handoff_due_equals=overdue") == {"a"}
        page = client.get(f"/admin/lead/?flt0_owner_rep_equals={second.id}").text
        assert re.findall(r'<td class="col-owner">\s*(.*?)\s*</td>', page, re.S) == [
            "second@example.com"]


def statements(client, path: str) -> int:
    """How many SQL statements one request runs."""
    answers = []
    run = statements_run(lambda: answers.append(client.get(path).status_code))
    assert answers == [200], path
    return len(run)


LIST_PATHS = ("/admin/lead/", "/admin/handoff/", "/admin/overdue/", "/admin/pending/",
              "/admin/enrollment/")


def test_lists_run_as_many_queries_for_50_rows_as_for_5(app, rep, people, now):
    def make(first, last):
        for i in range(first, last):
            promoted(rep, f"l{i}@example.com", at=now - timedelta(days=3),
                     actor="mia@example.com")
            enrolled(f"e{i}@example.com", at=now - timedelta(days=1))
    client = client_as(app, "mia@example.com")
    make(0, 5)
    few = {path: statements(client, path) for path in LIST_PATHS}
    make(5, 50)
    many = {path: statements(client, path) for path in LIST_PATHS}
    assert many == few


def test_the_lead_page_runs_as_many_queries_for_21_handoffs_as_for_1(app, rep, people, now):
    other = Rep.create(email="olly@example.com", name="Olly")
    handoff = promoted(rep, "ada@example.com", at=now - timedelta(days=3))
    thread.answer(handoff.id, address="mia@example.com", name="Mia", text="Any news?",
                  settings=runtime.settings, now=now - timedelta(days=3))
    client = client_as(app, "mia@example.com")
    path = f"/admin/lead/details/?id={handoff.lead_id}"
    one = statements(client, path)
    for i in range(20):
        handoff = lifecycle.reassign(handoff.id, rep_id=(other, rep)[i % 2].id,
                                     actor="sam@example.com",
                                     now=now - timedelta(days=2, minutes=-i),
                                     schedule=_schedule(now + timedelta(days=1)))
    page = client.get(path).text
    assert page.count("Any news?") == 1 and kinds(page).count("handoff") == 21
    assert statements(client, path) == one
