"""Panel pages for intake: timeline, merge, suggested MQLs, integration keys, form snippets
and the posts dropped from each form."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest

from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import Activity, IntegrationKey, Lead, LeadMerge
from service.core.runtime import runtime
from service.intake import counters
from service.intake.activity import ingest
from service.intake.event import Event
from tests.conftest import PASSWORD, csrf_token, log_in
from tests.web.test_webhooks import event, signed
from workers import recorder


def add(app, email, kind, now, **properties):
    ingest([Event(type=kind, occurred_at=now, email=email, properties=properties,
                  raw={"email": email, **properties})],
           source="webhook:website", settings=runtime.settings, now=now)
    return Lead.get(Lead.email == email)


def test_timeline_newest_first_and_escaped(app, marketer, now):
    lead = add(app, "ada@example.com", "page_view", now - timedelta(days=2), page="/a")
    add(app, "ada@example.com", "pricing_page_view", now, note="<script>alert(1)</script>")
    client = app.test_client()
    log_in(client, "mia@example.com")
    page = client.get(f"/admin/lead/details/?id={lead.id}").text
    assert re.findall(r"<td>(\w+)\s*<details>", page) == ["pricing_page_view", "page_view"]
    assert "<script>alert(1)</script>" not in page and "alert(1)" in page
    assert "webhook:website" in page and "Stage history" in page


def test_merge_through_panel(app, marketer, now):
    first = add(app, "grace@navy.example.com", "page_view", now)
    second = add(app, "g.hopper@navy.example.com", "contact_sales", now)
    Lead.update(company="Navy").where(Lead.id == second.id).execute()
    client = app.test_client()
    log_in(client, "mia@example.com")
    listing = client.get("/admin/lead/")
    chosen = client.post("/admin/lead/action/", data={
        "action": "merge", "rowid": [str(first.id), str(second.id)],
        "csrf_token": csrf_token(listing.text)})
    form = client.get(chosen.headers["Location"])
    assert "Merge duplicate leads" in form.text
    done = client.post("/admin/lead/merge/", data={
        "ids": f"{first.id},{second.id}", "survivor": str(first.id),
        "csrf_token": csrf_token(form.text)})
    assert done.status_code == 302
    survivor = Lead.get_by_id(first.id)
    assert survivor.company == "Navy" and Lead.select().count() == 1
    assert sorted(a.type for a in survivor.activities) == ["contact_sales", "page_view"]
    merge = LeadMerge.get()
    assert (merge.merged_email, merge.actor) == ("g.hopper@navy.example.com", "mia@example.com")


def test_suggested_list(app, marketer):
    now = utcnow()
    add(app, "hot@example.com", "contact_sales", now)
    add(app, "hot@example.com", "pricing_page_view", now)
    add(app, "hot@example.com", "page_view", now)
    add(app, "warm@example.com", "pricing_page_view", now)
    client = app.test_client()
    log_in(client, "mia@example.com")
    page = client.get("/admin/suggested/").text
    assert "hot@example.com" in page and "warm@example.com" not in page
    hot = Lead.get(Lead.email == "hot@example.com")
    promote = client.get(f"/admin/lead/promote/?id={hot.id}")
    assert "hot@example.com" in promote.text and "Promote to MQL" in promote.text


def test_integration_keys_admin_only_and_shown_once(app, marketer, now):
    client = app.test_client()
    log_in(client, "mia@example.com")
    assert client.get("/admin/keys/").status_code == 403
    create_user("root@example.com", role="admin", password=PASSWORD, now=now)
    admin = app.test_client()
    log_in(admin, "root@example.com")
    form = admin.get("/admin/keys/create/")
    created = admin.post("/admin/keys/create/", data={
        "kind": "webhook", "source": "website", "csrf_token": csrf_token(form.text)})
    secret = re.search(r'<code id="secret">([^<]+)</code>', created.text).group(1)
    assert secret.startswith("whsec_")
    listing = admin.get("/admin/keys/").text
    assert secret not in listing and "website" in listing
    assert app.test_client().post("/webhooks/website", data=signed(secret, event())[0],
                                  headers=signed(secret, event())[1]).status_code == 202
    key = IntegrationKey.get()
    admin.post("/admin/keys/action/", data={"action": "deactivate", "rowid": [str(key.id)],
                                            "csrf_token": csrf_token(listing)})
    data, headers = signed(secret, event(), msg_id="after")
    assert app.test_client().post("/webhooks/website", data=data,
                                  headers=headers).status_code == 401
    recorder.drain()
    assert Activity.select().count() == 1


def test_form_snippets(app, marketer):
    client = app.test_client()
    log_in(client, "mia@example.com")
    page = client.get("/admin/form_snippets/").text
    assert "http://localhost/f/contact" in page and '&lt;input name="first_name"' in page


def post_form(url: str, fields: dict) -> int:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as answer:
        return answer.code


def dropped_row(page: str, source: str) -> list[int]:
    row = re.search(rf'<tr data-source="{source}">(.*?)</tr>', page, re.S)
    assert row, f"no row for {source}"
    return [int(n) for n in re.findall(r'<td class="text-right">(\d+)</td>', row.group(1))]


class TestDroppedPosts:
    @pytest.fixture
    def settings_overrides(self, settings_overrides):
        return {**settings_overrides, "intake.form_rate_per_minute": 3}

    def test_honeypot_hits_and_rate_limited_posts_on_the_forms_page(self, app, live_server,
                                                                    now):
        earlier = utcnow()
        counters.count("form:contact", "honeypot", now=earlier - timedelta(days=3))
        counters.count("form:contact", "rate_limited", now=earlier - timedelta(days=20))
        counters.count("form:contact", "honeypot", now=earlier - timedelta(days=40))
        url = f"{live_server}/f/contact"
        statuses = [post_form(url, {"email": "bot@example.com", "website": "http://spam"}),
                    post_form(url, {"email": "bot@example.com", "website": "http://spam"}),
                    post_form(url, {"email": "ada@example.com"}),
                    post_form(url, {"email": "ada@example.com"}),
                    post_form(url, {"email": "bot@example.com", "website": "http://spam"})]
        assert statuses == [200, 200, 200, 429, 429]
        assert [lead.email for lead in Lead.select()] == ["ada@example.com"]
        create_user("ada.admin@example.com", role="admin", password=PASSWORD, now=now)
        client = app.test_client()
        log_in(client, "ada.admin@example.com")
        page = client.get("/admin/form_snippets/")
        assert page.status_code == 200 and "Dropped posts" in page.text
        # honeypot today, 7 days, 30 days; then rate-limited today, 7 days, 30 days
        assert dropped_row(page.text, "form:contact") == [2, 3, 3, 2, 2, 3]

