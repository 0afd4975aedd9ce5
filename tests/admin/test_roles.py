"""Every panel view and action, for every role: allowed ones answer, the others get 403,
and anonymous visitors are sent to the login page."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from service.accounts.users import create_user
from service.core.models import Handoff, Team, User
from tests.admin.test_hardening import follow_links, link_world, working_links
from tests.conftest import PASSWORD, csrf_token, log_in
from tests.factories import new_lead, promoted

ALL = {"admin", "marketer", "sales_manager"}
MANAGERS = {"admin", "sales_manager"}
MARKETING = {"admin", "marketer"}
ADMIN = {"admin"}

PAGES = {
    "/admin/": ALL, "/admin/lead/": ALL, "/admin/suggested/": ALL, "/admin/reengaged/": ALL,
    "/admin/pending/": ALL, "/admin/overdue/": ALL, "/admin/handoff/": ALL, "/admin/rep/": ALL,
    "/admin/team/": ALL, "/admin/definition/": ALL, "/admin/definition/version/": ALL,
    "/admin/sequences/": ALL, "/admin/enrollment/": ALL, "/admin/outbox/": ALL,
    "/admin/report.csv?chart=mqls": ALL, "/admin/report.csv?chart=campaigns": ALL,
    "/admin/report.csv?chart=sla": ALL, "/admin/lead/export/csv/": ALL,
    "/admin/outbound/": MANAGERS, "/admin/audit/": MANAGERS, "/admin/rep/new/": MANAGERS,
    "/admin/team/new/": MANAGERS, "/admin/pending/reassign/?ids={handoff}": MANAGERS,
    "/admin/lead/edit/?id={lead}": MARKETING, "/admin/lead/merge/?ids={lead},{lead2}": MARKETING,
    "/admin/lead/enroll/?ids={lead}": MARKETING, "/admin/form_snippets/": MARKETING,
    "/admin/suppression/": MARKETING, "/admin/suppression/add/": MARKETING,
    "/admin/inbound/": ALL, "/admin/inbound_all/": ALL, "/admin/inbound/attach/": ALL,
    "/admin/keys/": ADMIN, "/admin/keys/create/": ADMIN, "/admin/user/": ADMIN,
    "/admin/user/invite/": ADMIN, "/admin/user/edit/?id={user}": ADMIN,
    "/admin/webhooks/": ADMIN, "/admin/webhooks/add/": ADMIN,
    "/admin/sequences/preview/default/0": ALL,
    "/admin/email_templates/": ALL, "/admin/reject_reasons/": ALL,
    "/admin/sequences/history/default": ALL, "/admin/sequences/version/default/1": ALL,
    "/admin/email_templates/history/guide": ALL, "/admin/email_templates/version/guide/1": ALL,
    "/admin/email_templates/preview/guide/1": ALL, "/admin/reject_reasons/history/": ALL,
    "/admin/reject_reasons/version/all/1": ALL,
    "/admin/sequences/edit/": MARKETING, "/admin/sequences/edit/default": MARKETING,
    "/admin/email_templates/edit/": MARKETING, "/admin/email_templates/edit/guide": MARKETING,
    "/admin/lead/details/?id={lead2}": ALL, "/admin/lead/details/?id={lead}&before=1": ALL,
    "/admin/suggested/?since=week": ALL, "/admin/overdue/?flt0_mine_equals=1": ALL,
    "/admin/lead/?flt0_campaign_equals=x&flt1_team_equals=1": ALL,
    "/admin/handoff/?flt0_rep_equals=1&flt1_deadline_equals=today": ALL,
    "/admin/enrollment/?flt0_next_step_due_equals=week": ALL,
}
ACTIONS = [
    ("lead", "promote", ALL), ("lead", "merge", MARKETING), ("lead", "enroll", MARKETING),
    ("lead", "win", MANAGERS), ("lead", "recycle", MANAGERS), ("lead", "reopen", MANAGERS),
    ("lead", "outbound", MANAGERS), ("lead", "export", ADMIN), ("lead", "erase", ADMIN),
    ("pending", "reassign", MANAGERS), ("pending", "withdraw", MANAGERS),
    ("rep", "hand_over", MANAGERS), ("rep", "revoke_links", MANAGERS),
    ("enrollment", "stop", MARKETING),
    ("keys", "deactivate", ADMIN), ("inbound", "discard", ALL), ("inbound", "release", ALL),
    ("inbound", "attach", ALL), ("lead", "stop_nurture", MARKETING),
    ("lead", "reassign", MANAGERS),
]

# Forms posted straight to a route (not a list's bulk action): path, form, roles allowed.
POSTS = [
    ("/admin/email_templates/test/guide/1", {}, MARKETING),
    ("/admin/sequences/test/default/0", {}, MARKETING),
    ("/admin/saved/", {"endpoint": "lead", "name": "Mine", "query": "sort=1"}, ALL),
]
# Routes whose roles other files test (the generic Flask-Admin routes of each view are
# checked through PAGES and ACTIONS above): a new panel route must be in one of the tables.
TESTED_ELSEWHERE = {
    "admin.login", "admin.logout", "admin.change_password", "admin.reset_password",
    "saved.open_view",  # tests/admin/test_workspace.py: another user's view is a 404
    "lead.promote_view", "handoff.reassign_view", "handoff.withdraw_view",
    "pending.withdraw_view", "overdue.reassign_view", "overdue.withdraw_view",
    "handoff.answer_view", "pending.answer_view", "overdue.answer_view",  # test_inbound_panel
    "inbound.raw_view", "inbound_all.raw_view", "inbound_all.attach_view",
    "outbox.preview_view",  # tests/admin/test_hardening.py
    "webhook_endpoints.change_view", "webhook_endpoints.log_view",
    "webhook_endpoints.remove_view", "webhook_endpoints.retry_view",
    "webhook_endpoints.rotate_view", "webhook_endpoints.test_event_view",  # test_webhooks_panel
}
GENERIC = {"index_view", "action_view", "ajax_lookup", "ajax_update", "delete_view",
           "details_view", "edit_view", "export", "create_view", "static"}


def test_every_panel_route_is_in_a_role_table(app):
    tested = [path.split("?")[0].format(lead=1, lead2=2, handoff=1, user=1)
              for path in [*PAGES, *(post[0] for post in POSTS)]]
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint in TESTED_ELSEWHERE:
            continue
        if rule.endpoint.rpartition(".")[2] in GENERIC:
            continue
        pattern = re.compile("^" + re.sub(r"<[^>]+>", "[^/]+", rule.rule) + "$")
        if not any(pattern.match(path) for path in tested):
            missing.append(rule.rule)
    assert missing == []


@pytest.fixture
def world(app, rep, now):
    Team.create(name="EMEA")
    lead = new_lead("a@example.com", at=now, activity="page_view")
    handoff = promoted(rep, "b@example.com", at=now, actor="m", activity="page_view")
    lead2 = handoff.lead
    for role in ALL:
        create_user(f"{role}@example.com", role=role, password=PASSWORD, now=now)
    return {"lead": lead.id, "lead2": lead2.id, "handoff": handoff.id,
            "user": User.get(User.role == "marketer").id}


def client_for(app, role):
    client = app.test_client()
    assert log_in(client, f"{role}@example.com").status_code == 302
    return client


@pytest.mark.parametrize("role", sorted(ALL))
def test_pages_by_role(app, world, role):
    client = client_for(app, role)
    for path, allowed in PAGES.items():
        status = client.get(path.format(**world)).status_code
        if role in allowed:
            assert status in (200, 302), (role, path, status)
        else:
            assert status == 403, (role, path, status)


@pytest.mark.parametrize("role", sorted(ALL))
def test_actions_by_role(app, world, role):
    client = client_for(app, role)
    token = csrf_token(client.get("/admin/").text)
    for view, action, allowed in ACTIONS:
        ids = [str(world["lead2" if view == "pending" else "lead"])]
        if view == "pending":
            ids = [str(world["handoff"])]
        if action in ("erase", "hand_over", "deactivate", "revoke_links"):
            ids = ["999999"]  # nothing to destroy: only the permission is under test
        status = client.post(f"/admin/{view}/action/", data={
            "action": action, "rowid": ids, "csrf_token": token}).status_code
        if role in allowed:
            assert status != 403, (role, view, action)
        else:
            assert status == 403, (role, view, action, status)


@pytest.mark.parametrize("role", sorted(ALL))
def test_posts_by_role(app, world, role):
    client = client_for(app, role)
    token = csrf_token(client.get("/admin/").text)
    for path, form, allowed in POSTS:
        status = client.post(path, data={**form, "csrf_token": token}).status_code
        if role in allowed:
            assert status == 302, (role, path, status)
        else:
            assert status == 403, (role, path, status)


def test_anonymous_goes_to_login(app, world):
    client = app.test_client()
    for path in PAGES:
        response = client.get(path.format(**world))
        assert response.status_code == 302, path
        assert "/admin/login" in response.headers["Location"], path
    response = client.post("/admin/lead/action/", data={"action": "promote", "rowid": ["1"]})
    assert response.status_code in (302, 400)


LINKED = re.compile(r"""(?:href|src|action)=["'](/admin[^"'#]*)""")
KEPT_PARAMETERS = ("id", "ids", "chart", "kind")


def panel_pages(client, start: list[str], limit: int = 400):
    """Every panel page reachable by GET from start (details, previews, exports, charts…),
    each with its body; sort, page and filter variants of a list count once."""
    seen, queue = set(), list(start)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen or "/static/" in path or path.endswith("/logout"):
            continue
        seen.add(path)
        response = client.get(path)
        yield path, response
        if response.mimetype == "text/html":
            for link in LINKED.findall(html.unescape(response.text)):
                parts = urlsplit(link)
                query = urlencode([(k, v) for k, v in parse_qsl(parts.query)
                                   if k in KEPT_PARAMETERS])
                queue.append(parts.path + (f"?{query}" if query else ""))


@pytest.mark.parametrize("role", sorted(ALL))
def test_no_page_shows_a_working_link_token(app, world, rep, now, role):
    ids = link_world(app, rep, now)
    client = client_for(app, role)
    start = [path.format(**world) for path in PAGES] + [
        f"/admin/{view}/export/csv/" for view in ("lead", "handoff", "outbox", "audit",
                                                  "suppression", "enrollment", "user")] + [
        f"/admin/outbox/details/?id={i}" for n in ids.values() for i in n[:2]]
    visited = 0
    for path, response in panel_pages(client, start):
        visited += response.status_code == 200
        assert not working_links(app, response.get_data(as_text=True)), (role, path)
        follow_links(app, response.get_data(as_text=True))
    assert visited > 40
    assert Handoff.select().where(Handoff.status != "pending").count() == 0
