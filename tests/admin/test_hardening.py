"""Panel hardening: return URLs stay on the panel, CSV cells never run as formulas, no
working decision/unsubscribe/click link is ever shown, and out-of-range parameters answer
400, never 500. Plus the architecture: one CSV module, one redirect gate."""

from __future__ import annotations

import ast
import csv
import io
import re
from datetime import timedelta
from urllib.parse import quote

import pytest

from service.accounts.users import create_user
from service.core import outbox
from service.core.csvfile import csv_cell, csv_text
from service.core.links import BadLink, read_click_token, read_handoff_token, read_unsubscribe_token
from service.core.models import Handoff, Suppression
from service.core.redirects import redirect_target
from service.intake.importer import import_csv
from tests.conftest import PASSWORD, ROOT, csrf_token, log_in, run_worker
from tests.factories import promoted, record_activity

ROLES = ("admin", "marketer", "sales_manager")
HOSTILE_TARGETS = [
    "http:evil.example/x", "https:evil.example", "//evil.example", "///evil.example",
    "/\\evil.example", "\\\\evil.example", "/%5Cevil.example", "/%2F/evil.example",
    "%2F%2Fevil.example", "/\t/evil.example", "/admin/\r\nSet-Cookie:x=1", "/\x00/evil",
    "https://evil.example/admin/", "javascript:alert(1)", " //evil.example",
    "/admin/..//evil.example", "/admin%2F..%2F%2Fevil.example", "/admin/%252F%252Fevil",
]


def users(now):
    for role in ROLES:
        create_user(f"{role}@example.com", role=role, password=PASSWORD, now=now)


def logged_in(app, role):
    client = app.test_client()
    assert log_in(client, f"{role}@example.com").status_code == 302
    return client


def off_site(location: str | None) -> bool:
    return bool(location) and not location.startswith("/admin")


# 2. Open redirect ---------------------------------------------------------------------------

@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_redirect_target_keeps_only_panel_paths(target):
    assert redirect_target(target, under="/admin") is None
    assert redirect_target(target, under="/admin", default="/admin/") == "/admin/"


def test_redirect_target_accepts_panel_paths_and_listed_urls():
    for target in ("/admin", "/admin/", "/admin/lead/?sort=2&desc=1&search=a%20b",
                   "/admin/lead/details/?id=1&url=%2Fadmin%2Flead%2F"):
        assert redirect_target(target, under="/admin") == target
    listed = "https://www.example.com/thanks"
    assert redirect_target(listed, allowed=[listed]) == listed
    assert redirect_target(listed + "?x", allowed=[listed]) is None
    assert redirect_target("https://shop.example.com/a", signed=True) == (
        "https://shop.example.com/a")
    assert redirect_target("https:shop.example.com", signed=True) is None


def test_return_urls_never_leave_the_panel(app, rep, now):
    users(now)
    lead = record_activity("a@example.com", type="page_view", source="t", occurred_at=now,
                           now=now).lead
    pages = ["/admin/lead/details/?id=999999", "/admin/lead/details/?id={lead}",
             "/admin/lead/edit/?id=999999", "/admin/rep/edit/?id=999999",
             "/admin/outbox/details/?id=999999", "/admin/lead/export/csv/"]
    for role in ROLES:
        client = logged_in(app, role)
        for page in pages:
            for target in HOSTILE_TARGETS:
                url = page.format(lead=lead.id) + ("&" if "?" in page else "?") + (
                    "url=" + quote(target, safe=""))
                response = client.get(url)
                assert response.status_code in (400, 403), (role, url, response.status_code)
                assert not off_site(response.headers.get("Location")), (role, url)
    client = logged_in(app, "admin")
    back = "/admin/lead/?sort=1"
    page = client.get(f"/admin/lead/details/?id={lead.id}&url={quote(back, safe='')}")
    assert page.status_code == 200 and f'href="{back}"' in page.text
    gone = client.get(f"/admin/lead/details/?id=999999&url={quote(back, safe='')}")
    assert gone.status_code == 302 and gone.headers["Location"] == back


def test_login_chain_does_not_send_anyone_off_site(app, now):
    users(now)
    client = app.test_client()
    for target in ("http:evil.example/x", "//evil.example", "/\\evil.example"):
        details = f"/admin/lead/details/?id=999999&url={quote(target, safe='')}"
        first = client.get(details)
        assert first.status_code in (302, 400) and not off_site(first.headers.get("Location"))
        login = f"/admin/login?next={quote(details, safe='')}"
        answer = client.post(login, data={"email": "marketer@example.com", "password": PASSWORD,
                                          "csrf_token": csrf_token(client.get(login).text)})
        assert answer.headers["Location"] == details
        assert not off_site(answer.headers.get("Location"))
        landing = client.get(answer.headers["Location"])
        assert not off_site(landing.headers.get("Location")), target
        client.post("/admin/logout")


def test_form_redirect_goes_only_to_listed_targets(make_app):
    listed = "https://www.example.com/thanks"
    app = make_app(forms={"contact": {"fields": {"email": "email"}, "redirect": "",
                                      "allowed_redirects": [listed]}})
    client = app.test_client()
    for target in ("http:evil.example", "//evil.example", listed + "\r\nX: y"):
        response = client.post("/f/contact", data={"email": "a@example.com",
                                                   "_redirect": target})
        assert response.status_code == 200 and "Location" not in response.headers
    response = client.post("/f/contact", data={"email": "a@example.com", "_redirect": listed})
    assert response.status_code == 303 and response.headers["Location"] == listed


# 3. CSV formula injection -------------------------------------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "＝1+1", "＋1+1", "－2+3",
            "＠SUM(1)", "﹦1+1"]


def test_csv_cell_neutralises_formulas_and_keeps_numbers():
    for text in FORMULAS:
        assert csv_cell(text) == "'" + text
    assert [csv_cell(v) for v in (-12, -0.5, 3, "-12", "-0.5", "+44", None, "ok")] == [
        -12, -0.5, 3, "-12", "-0.5", "+44", "", "ok"]
    rows = list(csv.reader(io.StringIO(csv_text([["=1+1", -3]]))))
    assert rows == [["'=1+1", "-3"]]


def assert_no_formula(text: str, expected: int) -> None:
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    dangerous = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))
                 and not re.fullmatch(r"[+-]?\d+(\.\d+)?", c)]
    assert not dangerous, dangerous
    assert sum(c.startswith("'") for c in cells) >= expected, cells


def test_panel_exports_and_chart_csvs_neutralise_formulas(app, rep, now):
    users(now)
    for i, text in enumerate(FORMULAS):
        promoted(rep, f"lead{i}@example.com", at=now, actor=text, activity="page_view",
                 source=text, fields={"first_name": text, "company": text})
    client = logged_in(app, "admin")
    export = client.get("/admin/lead/export/csv/")
    assert export.status_code == 200
    assert_no_formula(export.text, 2 * len(FORMULAS))
    handoffs = client.get("/admin/handoff/export/csv/")
    assert_no_formula(handoffs.text, len(FORMULAS))
    day = now.date()
    chart = client.get(f"/admin/report.csv?chart=sources&start={day - timedelta(days=30)}"
                       f"&end={day + timedelta(days=1)}&period=day")
    assert chart.status_code == 200
    assert_no_formula(chart.text, len(FORMULAS))


def test_importer_skipped_rows_neutralise_formulas(app, now, tmp_path):
    file = tmp_path / "leads.csv"
    file.write_text("email,company\n" + "".join(
        f"{quote_csv(text)},{quote_csv(text)}\n" for text in FORMULAS[:4]))
    report = import_csv(file, source="import", now=now)
    assert report.skipped == 4
    assert_no_formula(report.skipped_file.read_text(), 8)


def quote_csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


# 4. Live links in the panel -----------------------------------------------------------------

TOKEN_LINK = re.compile(r"/([huc])/([A-Za-z0-9_.\-]+)")


def working_links(app, text: str) -> list[str]:
    """The /h/, /u/ and /c/ tokens in text that still load."""
    secret, found = app.secret_key, []
    for kind, token in TOKEN_LINK.findall(text):
        if kind == "h":
            try:
                read_handoff_token(secret, token, max_age_hours=24 * 365)
            except BadLink:
                continue
            found.append(f"/h/{token}")
        elif kind == "u" and read_unsubscribe_token(secret, token) is not None:
            found.append(f"/u/{token}")
        elif kind == "c" and read_click_token(secret, token) is not None:
            found.append(f"/c/{token}")
    return found


def follow_links(app, text: str) -> None:
    """Every link token in text, used over HTTP: nothing decides, unsubscribes or redirects."""
    client = app.test_client()
    for kind, token in TOKEN_LINK.findall(text):
        if kind == "h":
            assert client.get(f"/h/{token}").status_code >= 400
        elif kind == "u":
            answer = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code >= 400
        else:
            assert client.get(f"/c/{token}").status_code >= 400


def link_world(app, rep, now) -> dict:
    """A rep's handoff email and a prospect's nurture email, each once sent and once not."""
    ids = {}
    for n, when in (("sent", now), ("unsent", None)):
        handoff = promoted(rep, f"{n}@example.com", at=now, actor="m",
                           activity="page_view", fields={"first_name": n})
        lead = handoff.lead
        prospect = outbox.queue_email("nurture/checkin", to_address=lead.email, to_name=n,
                                      lead_id=lead.id, now=now, to_prospect=True,
                                      context={"subject": "Hello"})
        ids[n] = (handoff.emails[0].id, prospect.id, lead.id)
        if when:
            run_worker()
    return ids


def test_outbox_shows_only_inert_links_to_every_role(app, rep, now, smtp):
    users(now)
    ids = link_world(app, rep, now)
    assert len(smtp.messages) == 2 and "/h/" in smtp.text(0)
    for role in ROLES:
        client = logged_in(app, role)
        for outbox_id in (i for n in ids.values() for i in n[:2]):
            for page in (f"/admin/outbox/details/?id={outbox_id}",
                         f"/admin/outbox/preview/{outbox_id}"):
                response = client.get(page)
                assert response.status_code == 200, (role, page)
                assert not working_links(app, response.text), (role, page)
                follow_links(app, response.text)
        details = client.get(f"/admin/outbox/details/?id={ids['sent'][0]}").text
        assert "/h/(hidden-in-the-panel)" in details
        for page in ("/admin/outbox/", "/admin/outbox/export/csv/",
                     f"/admin/lead/details/?id={ids['sent'][2]}"):
            assert not working_links(app, client.get(page).text), (role, page)
    assert Handoff.select().where(Handoff.status != "pending").count() == 0
    assert Suppression.select().count() == 0


def test_preview_keeps_the_email_readable_without_hrefs(app, rep, now):
    users(now)
    ids = link_world(app, rep, now)
    preview = logged_in(app, "marketer").get(f"/admin/outbox/preview/{ids['unsent'][0]}")
    assert "Accept" in preview.text and "Riley" in preview.text
    assert not re.search(r"href=[\"'][^\"']*/[huc]/", preview.text)


def test_a_reset_email_caught_mid_send_shows_no_working_reset_link(app, now):
    """A worker that stopped mid-send leaves its reset email claimed: the preview would build
    the live link; the panel shows it inert."""
    from service.accounts.users import send_reset_link, user_for_reset
    from service.core.models import OutboxEmail, User

    users(now)
    target = User.get(User.email == "marketer@example.com")
    with app.app_context():
        send_reset_link(target.id, now=now)
    row = OutboxEmail.get(OutboxEmail.template == "password_reset")
    assert outbox.claim([row.id], now=now, claim_seconds=600) == [row.id]
    client = logged_in(app, "admin")
    for page in (f"/admin/outbox/preview/{row.id}", f"/admin/outbox/details/?id={row.id}"):
        text = client.get(page).text
        assert "password" in text, page
        tokens = re.findall(r"/admin/reset/([A-Za-z0-9_.-]+)", text)
        assert not [t for t in tokens if user_for_reset(app.secret_key, t)], page


# 14. Out-of-range parameters ----------------------------------------------------------------

HUGE = str(10**20)
VIEWS = ("lead", "pending", "overdue", "handoff", "rep", "team", "enrollment", "suppression",
         "definition", "outbox", "keys", "user", "audit")


def test_out_of_range_parameters_answer_400_never_500(app, rep, now):
    users(now)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = logged_in(app, "admin")
    paths = []
    for view in VIEWS:
        for query in (f"page={HUGE}", "page=-1", f"page_size={HUGE}", f"sort={HUGE}",
                      "sort=-1", f"id={HUGE}", "id=abc", "id=-1", "id=2147483648"):
            paths += [f"/admin/{view}/?{query}", f"/admin/{view}/details/?{query}",
                      f"/admin/{view}/export/csv/?{query}"]
    paths += [f"/admin/outbox/preview/{HUGE}", f"/admin/sequences/preview/default/{HUGE}",
              f"/admin/lead/merge/?ids={HUGE},1", f"/admin/lead/promote/?ids={HUGE}",
              f"/admin/lead/enroll/?ids={HUGE}", f"/admin/pending/reassign/?ids={HUGE}",
              f"/admin/pending/withdraw/?ids={HUGE}", f"/admin/lead/edit/?id={HUGE}"]
    for path in paths:
        status = client.get(path).status_code
        assert status < 500, (path, status)
    assert client.get(f"/admin/lead/?page={HUGE}").status_code == 400
    assert client.get("/admin/lead/details/?id=2147483648").status_code == 400
    assert client.get(f"/admin/outbox/preview/{HUGE}").status_code == 400
    token = csrf_token(client.get("/admin/").text)
    action = client.post("/admin/lead/action/", data={
        "action": "win", "rowid": [HUGE], "csrf_token": token})
    assert action.status_code == 400


def test_every_date_filter_works_and_reads_utc(app, rep, now):
    """Date filters compared naive datetimes with UTC columns: every one answered 500."""
    from flask_admin.model.filters import BaseDateTimeFilter

    users(now)
    for days, email in ((0, "today@example.com"), (3, "earlier@example.com")):
        when = now - timedelta(days=days)
        record_activity(email, type="page_view", source="t", occurred_at=when, now=when)
    client = logged_in(app, "admin")
    since = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    leads = client.get("/admin/lead/?flt0_created_at_greater_than=" + quote(since))
    assert leads.status_code == 200
    assert "today@example.com" in leads.text and "earlier@example.com" not in leads.text
    tried = 0
    for view in app.extensions["admin"][0]._views:
        for index, flt in enumerate(getattr(view, "_filters", None) or ()):
            if not isinstance(flt, BaseDateTimeFilter):
                continue
            name = view.get_filter_arg(index, flt)
            for value in ("0001-01-01 00:00:00", "9999-12-31 23:59:59", since, "not a date"):
                if "between" in name:
                    value = f"{value} to {value}"
                for page in (f"/admin/{view.endpoint}/", f"/admin/{view.endpoint}/export/csv/"):
                    response = client.get(f"{page}?flt0_{name}={quote(value)}")
                    assert response.status_code == 200, (page, name, value)
                    tried += 1
    assert tried > 100


@pytest.mark.parametrize("query", [
    "start=0001-01-01", "end=9999-12-31", "start=0001-01-01&end=0001-01-02",
    "start=9999-12-30&end=9999-12-31", "period=week&start=0001-01-01&end=0001-03-01",
    "period=day&start=9999-12-01&end=9999-12-31", "period=quarter&start=0001-01-01&end=0001-06-01",
    "period=year&start=9998-01-01&end=9999-12-31", "period=week&start=1970-01-01&end=1972-12-31",
    "period=quarter&start=2997-01-01&end=2999-12-31", "period=year&start=2997-01-01&end=2999-12-31",
    "start=2026-13-01", f"start={HUGE}"])
def test_dashboard_and_chart_ranges_never_500(app, now, query):
    users(now)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = logged_in(app, "sales_manager")
    assert client.get(f"/admin/?{query}").status_code == 200
    for chart in ("mqls", "conversion", "sla", "reasons", "sources", "definitions", "origins",
                  "funnel"):
        assert client.get(f"/admin/report.csv?chart={chart}&{query}").status_code == 200


# Architecture -------------------------------------------------------------------------------

SOURCES = [path for folder in ("service", "admin", "workers")
           for path in (ROOT / folder).rglob("*.py")]
REDIRECT_GATES = {"url_for", "redirect_target", "safe_next"}


def call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        func = node.func
        return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    return ""


def test_csv_writers_only_in_the_csv_module():
    for path in SOURCES:
        if path == ROOT / "service" / "core" / "csvfile.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("writer", "DictWriter") and (
                    isinstance(node.value, ast.Name) and node.value.id == "csv"):
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} writes CSV itself")


def gated(argument: ast.AST, function: ast.AST) -> bool:
    """A redirect target is url_for(…) or the redirect gate's result, directly or through a
    name every assignment of which in the function is one."""
    if call_name(argument) in REDIRECT_GATES:
        return True
    if not isinstance(argument, ast.Name):
        return False
    values = [node.value for node in ast.walk(function) if isinstance(node, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id == argument.id for t in node.targets)]
    return bool(values) and all(call_name(value) in REDIRECT_GATES for value in values)


def test_every_redirect_goes_through_url_for_or_the_gate():
    checked = 0
    for path in list((ROOT / "admin").rglob("*.py")) + list(
            (ROOT / "service" / "web").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            for node in ast.walk(function):
                if call_name(node) == "redirect" and isinstance(node.func, ast.Name):
                    checked += 1
                    assert node.args and gated(node.args[0], function), (
                        f"{path.relative_to(ROOT)}:{node.lineno}")
    assert checked > 10
