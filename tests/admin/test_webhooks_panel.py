"""The Webhooks page: admins add endpoints (the address checked, the secret shown once),
edit, rotate and delete them, and read each one's delivery log with a filter by status;
"Retry now" puts a failed delivery back in line and "Send a test event" writes one. Changes
go through service.webhooks.endpoints; the pages are checked against the rows. No delivery
is sent here (that is the worker's job), and one test drives the pages in Debian's
chromium."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from markupsafe import escape
from playwright.sync_api import expect

from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import AuditEvent, Lead, WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.core.runtime import runtime
from service.webhooks import endpoints
from tests.admin.test_browser import (  # noqa: F401 - the browser fixture
    browser_page,
    log_in_page,
    shot,
)
from tests.conftest import PASSWORD, csrf_token, free_port, log_in
from tests.factories import new_lead

ROLES = ("admin", "marketer", "sales_manager")
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def settings_overrides(settings_overrides):
    """Endpoints on loopback (the tests' receivers and the live server's) are allowed."""
    return {**settings_overrides, "outbound.allow_private_urls": True}


@pytest.fixture
def people(app, now):
    for role in ROLES:
        create_user(f"{role}@example.com", role=role, password=PASSWORD, now=now)


def client_as(app, role: str = "admin"):
    client = app.test_client()
    assert log_in(client, f"{role}@example.com").status_code == 302
    return client


def hook_url(path: str = "hook") -> str:
    return f"http://127.0.0.1:{free_port()}/{path}"


def form(client, path: str, **fields):
    token = csrf_token(client.get(path).text)
    return client.post(path, data={"csrf_token": token, **fields})


def post(client, path: str):
    token = csrf_token(client.get("/admin/").text)
    return client.post(path, data={"csrf_token": token})


def add_endpoint(url: str | None = None, **data) -> WebhookEndpoint:
    endpoint, _ = endpoints.create({"url": url or hook_url(), **data}, actor="t",
                                   settings=runtime.settings, now=utcnow())
    return endpoint


def list_row(page: str, endpoint_id: int) -> str:
    """The endpoints list's row of one endpoint (its cells link to its log)."""
    [row] = [chunk.split("</tr>")[0] for chunk in page.split("<tr")[1:]
             if f'href="/admin/webhooks/log/{endpoint_id}"' in chunk]
    return row


def deliveries(endpoint_id: int) -> list[WebhookDelivery]:
    return list(WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint_id)
                .order_by(WebhookDelivery.id))


def test_create_shows_the_secret_once_and_never_again(app, people):
    client = client_as(app)
    url = hook_url("crm")
    created = form(client, "/admin/webhooks/add/", endpoint_url=url,
                   description="HubSpot sync", event_types=["lead.sql", "handoff.accepted"],
                   format="standard", active="y")
    assert created.status_code == 200
    endpoint = WebhookEndpoint.get()
    assert (endpoint.url, endpoint.description, endpoint.event_types, endpoint.format,
            endpoint.active) == (url, "HubSpot sync", ["handoff.accepted", "lead.sql"],
                                 "standard", True)
    assert SECRET.findall(created.text) == [endpoint.secret]
    assert "you will not see it again" in created.text
    assert created.headers["Cache-Control"] == "no-store"

    later = [client.get(path, follow_redirects=True) for path in (
        "/admin/webhooks/", f"/admin/webhooks/change/{endpoint.id}",
        f"/admin/webhooks/log/{endpoint.id}", f"/admin/webhooks/remove/{endpoint.id}",
        "/admin/audit/", "/admin/audit/export/csv/", "/admin/",
        f"/admin/webhooks/details/?id={endpoint.id}", "/admin/webhooks/export/csv/")]
    for page in later:
        assert page.status_code == 200
        assert endpoint.secret not in page.text and "whsec_" not in page.text
    listed = later[0].text
    assert url in listed and "HubSpot sync" in listed and "handoff.accepted, lead.sql" in listed


def test_the_list_shows_state_types_and_counts(app, people):
    every = add_endpoint(description="Everything")
    slack = add_endpoint(description="Sales channel", format="slack",
                         event_types=["lead.sql"])
    new_lead("ada@example.com", at=utcnow())
    new_lead("bob@example.com", at=utcnow())
    [first, _] = deliveries(every.id)
    WebhookDelivery.update(status="failed").where(WebhookDelivery.id == first.id).execute()
    since = utcnow() - timedelta(days=5)
    WebhookEndpoint.update(active=False, disabled_at=since, failing_since=since - timedelta(
        days=1), disabled_reason=f"every attempt failed for 5 days {HOSTILE}").where(
        WebhookEndpoint.id == slack.id).execute()

    page = client_as(app).get("/admin/webhooks/").text
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(
        r"<td[^>]*>(.*?)</td>", list_row(page, every.id), re.S)]
    assert "all" in cells and "standard" in cells and "active" in cells
    assert cells[-3:-1] == ["1", "1"], cells  # one pending, one failed
    slack_row = list_row(page, slack.id)
    assert "lead.sql" in slack_row and "slack" in slack_row
    assert f"disabled since {since:%Y-%m-%d %H:%M} UTC" in slack_row
    assert str(escape(HOSTILE)) in slack_row and HOSTILE not in page
    assert f"{since - timedelta(days=1):%Y-%m-%d %H:%M}" in slack_row


def test_a_private_address_is_refused_on_the_form_with_what_was_typed(make_app, now):
    app = make_app(**{"outbound.allow_private_urls": False})
    create_user("admin@example.com", role="admin", password=PASSWORD, now=now)
    client = client_as(app)
    refused = form(client, "/admin/webhooks/add/",
                   endpoint_url="http://127.0.0.1/hooks/leads", description="On-prem CRM",
                   event_types=["lead.mql"], format="slack", active="y")
    assert refused.status_code == 200
    assert WebhookEndpoint.select().count() == 0
    assert "resolves to a private or reserved address (127.0.0.1)" in refused.text
    assert 'value="http://127.0.0.1/hooks/leads"' in refused.text
    assert 'value="On-prem CRM"' in refused.text
    assert re.search(r'checked[^>]*value="lead.mql"|value="lead.mql"[^>]*checked',
                     refused.text)
    assert re.search(r'checked[^>]*value="slack"|value="slack"[^>]*checked', refused.text)
    assert "whsec_" not in refused.text


def test_edit_changes_the_endpoint_and_refuses_a_bad_url(app, people):
    endpoint = add_endpoint(description="Old", event_types=["lead.sql"])
    client = client_as(app)
    page = client.get(f"/admin/webhooks/change/{endpoint.id}").text
    assert 'value="Old"' in page and endpoint.url in page
    new_url = hook_url("v2")
    saved = form(client, f"/admin/webhooks/change/{endpoint.id}", endpoint_url=new_url,
                 description="New", format="slack")  # no type ticked: all; not active
    assert saved.status_code == 302
    assert saved.headers["Location"].endswith(f"/admin/webhooks/log/{endpoint.id}")
    endpoint = WebhookEndpoint.get_by_id(endpoint.id)
    assert (endpoint.url, endpoint.description, endpoint.event_types, endpoint.format,
            endpoint.active) == (new_url, "New", [], "slack", False)
    assert "turned off" in client.get("/admin/webhooks/").text

    bad = form(client, f"/admin/webhooks/change/{endpoint.id}",
               endpoint_url="ftp://files.example.com/x", description="Typed", active="y",
               format="standard")
    assert bad.status_code == 200 and "must start with https://" in bad.text
    assert 'value="ftp://files.example.com/x"' in bad.text
    assert WebhookEndpoint.get_by_id(endpoint.id).url == new_url
    assert client.get("/admin/webhooks/change/99999").status_code == 404


def test_rotate_shows_the_new_secret_once_and_the_grace(app, people):
    endpoint = add_endpoint()
    old = endpoint.secret
    client = client_as(app)
    assert client.get(f"/admin/webhooks/rotate/{endpoint.id}").status_code == 405
    no_token = client.post(f"/admin/webhooks/rotate/{endpoint.id}")
    assert no_token.status_code == 400 and WebhookEndpoint.get_by_id(endpoint.id).secret == old

    rotated = post(client, f"/admin/webhooks/rotate/{endpoint.id}")
    endpoint = WebhookEndpoint.get_by_id(endpoint.id)
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert SECRET.findall(rotated.text) == [endpoint.secret]
    until = endpoint.previous_secret_until
    assert until - utcnow() > timedelta(hours=23)
    assert f"keeps signing beside the new one until <strong>{until:%Y-%m-%d %H:%M} UTC" in (
        rotated.text)
    assert rotated.headers["Cache-Control"] == "no-store"
    log = client.get(f"/admin/webhooks/log/{endpoint.id}").text
    assert f"until {until:%Y-%m-%d %H:%M} UTC" in log
    assert "whsec_" not in log


def test_delete_asks_then_takes_only_its_own_deliveries(app, people):
    doomed = add_endpoint(description="Doomed")
    kept = add_endpoint(description="Kept")
    new_lead("ada@example.com", at=utcnow())
    assert len(deliveries(doomed.id)) == len(deliveries(kept.id)) == 1
    client = client_as(app)
    ask = client.get(f"/admin/webhooks/remove/{doomed.id}")
    assert "its 1 delivery(ies) are deleted" in ask.text
    assert WebhookEndpoint.get_or_none(WebhookEndpoint.id == doomed.id) is not None
    assert client.post(f"/admin/webhooks/remove/{doomed.id}").status_code == 400  # no CSRF

    gone = form(client, f"/admin/webhooks/remove/{doomed.id}")
    assert gone.status_code == 302
    assert WebhookEndpoint.get_or_none(WebhookEndpoint.id == doomed.id) is None
    assert deliveries(doomed.id) == []
    assert len(deliveries(kept.id)) == 1 and WebhookEvent.select().count() == 1
    listed = client.get("/admin/webhooks/").text
    assert "Kept" in listed and "Doomed" not in listed.split("model-list")[1]


def test_the_log_filters_pages_links_and_escapes(app, people):
    endpoint = add_endpoint()
    other = add_endpoint()
    ada = new_lead("ada@example.com", at=utcnow())
    for n in range(54):
        new_lead(f"lead{n}@example.com", at=utcnow())
    rows = deliveries(endpoint.id)
    assert len(rows) == 55
    ada_delivery = rows[0]
    WebhookDelivery.update(status="failed", attempts=8, last_status_code=500,
                           response_excerpt=HOSTILE, last_attempt_at=utcnow()).where(
        WebhookDelivery.id == ada_delivery.id).execute()
    WebhookDelivery.update(status="delivered", attempts=1, last_status_code=204).where(
        WebhookDelivery.id == rows[1].id).execute()
    client = client_as(app)

    first = client.get(f"/admin/webhooks/log/{endpoint.id}").text
    shown = re.findall(r'data-delivery="(\d+)"', first)
    assert len(shown) == 50 and shown[0] == str(rows[-1].id), "newest first"
    assert "Page 1 of 2" in first
    older = client.get(f"/admin/webhooks/log/{endpoint.id}?page=1").text
    assert re.findall(r'data-delivery="(\d+)"', older) == [str(r.id) for r in rows[4::-1]]

    failed = client.get(f"/admin/webhooks/log/{endpoint.id}?status=failed").text
    assert re.findall(r'data-delivery="(\d+)"', failed) == [str(ada_delivery.id)]
    assert str(escape(HOSTILE)) in failed and HOSTILE not in failed
    assert f'href="/admin/lead/details/?id={ada.id}"' in failed
    assert ada_delivery.event.public_id in failed and "lead.created" in failed
    assert "Retry now" in failed and ">500<" in failed.replace(" ", "")
    delivered = client.get(f"/admin/webhooks/log/{endpoint.id}?status=delivered").text
    assert re.findall(r'data-delivery="(\d+)"', delivered) == [str(rows[1].id)]
    assert "Retry now" not in delivered
    pending = client.get(f"/admin/webhooks/log/{endpoint.id}?status=pending").text
    assert len(re.findall(r'data-delivery="(\d+)"', pending)) == 50
    assert "53 deliveries pending" in pending
    assert not set(re.findall(r'data-delivery="(\d+)"', first)) & {
        str(d.id) for d in deliveries(other.id)}
    assert client.get(f"/admin/webhooks/log/{endpoint.id}?status=lost").status_code == 400
    assert client.get("/admin/webhooks/log/99999").status_code == 404

    Lead.delete().where(Lead.id == ada.id).execute()  # gone (as after a merge)
    failed = client.get(f"/admin/webhooks/log/{endpoint.id}?status=failed").text
    assert f"lead {ada.id} <span" in failed and "/admin/lead/details/" not in failed


def test_retry_now_puts_a_failed_delivery_back_in_line(app, people):
    endpoint = add_endpoint()
    new_lead("ada@example.com", at=utcnow())
    [delivery] = deliveries(endpoint.id)
    WebhookDelivery.update(status="failed", attempts=8, next_attempt_at=None).where(
        WebhookDelivery.id == delivery.id).execute()
    client = client_as(app)
    assert client.post(f"/admin/webhooks/retry/{delivery.id}").status_code == 400  # no CSRF
    assert WebhookDelivery.get_by_id(delivery.id).status == "failed"

    before = utcnow()
    done = post(client, f"/admin/webhooks/retry/{delivery.id}")
    assert done.headers["Location"].endswith(f"/admin/webhooks/log/{endpoint.id}")
    again = WebhookDelivery.get_by_id(delivery.id)
    assert (again.status, again.attempts) == ("pending", 0)
    assert again.next_attempt_at >= before - timedelta(seconds=1)
    assert AuditEvent.get(AuditEvent.action == "webhook_retry").actor == "admin@example.com"
    page = client.get(f"/admin/webhooks/log/{endpoint.id}").text
    assert "will be tried again now" in page

    WebhookDelivery.update(status="delivered").where(
        WebhookDelivery.id == delivery.id).execute()
    refused = post(client, f"/admin/webhooks/retry/{delivery.id}")
    assert refused.status_code == 302
    assert "was delivered already" in client.get(refused.headers["Location"]).text
    assert WebhookDelivery.get_by_id(delivery.id).status == "delivered"
    assert post(client, "/admin/webhooks/retry/99999").status_code == 404


def test_a_test_event_is_written_for_this_endpoint_only(app, people):
    endpoint = add_endpoint(event_types=["lead.sql"])
    other = add_endpoint()
    client = client_as(app)
    sent = post(client, f"/admin/webhooks/test/{endpoint.id}")
    assert sent.status_code == 302
    [delivery] = deliveries(endpoint.id)
    assert (delivery.event.type, delivery.status) == ("webhook.test", "pending")
    assert delivery.event.data["sent_by"] == "admin@example.com"
    assert deliveries(other.id) == []
    log = client.get(sent.headers["Location"]).text
    assert f"Test event {delivery.event.public_id} queued" in log
    assert f'data-delivery="{delivery.id}"' in log and "webhook.test" in log


PAGES = ("/admin/webhooks/", "/admin/webhooks/add/", "/admin/webhooks/change/{id}",
         "/admin/webhooks/log/{id}", "/admin/webhooks/remove/{id}")
POSTS = ("/admin/webhooks/add/", "/admin/webhooks/change/{id}", "/admin/webhooks/rotate/{id}",
         "/admin/webhooks/remove/{id}", "/admin/webhooks/test/{id}",
         "/admin/webhooks/retry/{delivery}")


@pytest.mark.parametrize("role", ["marketer", "sales_manager"])
def test_only_admins_see_or_change_webhooks(app, people, role):
    endpoint = add_endpoint()
    secret = endpoint.secret
    new_lead("ada@example.com", at=utcnow())
    [delivery] = deliveries(endpoint.id)
    WebhookDelivery.update(status="failed").where(WebhookDelivery.id == delivery.id).execute()
    ids = {"id": endpoint.id, "delivery": delivery.id}
    client = client_as(app, role)
    assert 'href="/admin/webhooks/"' not in client.get("/admin/").text
    for path in PAGES:
        assert client.get(path.format(**ids)).status_code == 403, path
    token = csrf_token(client.get("/admin/").text)
    for path in POSTS:
        answer = client.post(path.format(**ids), data={
            "csrf_token": token, "endpoint_url": hook_url(), "format": "standard"})
        assert answer.status_code == 403, path
    assert WebhookEndpoint.select().count() == 1
    assert WebhookEndpoint.get_by_id(endpoint.id).secret == secret
    assert [d.status for d in deliveries(endpoint.id)] == ["failed"]
    admin = client_as(app, "admin")
    assert 'href="/admin/webhooks/"' in admin.get("/admin/").text
    anonymous = app.test_client().get("/admin/webhooks/")
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]


def test_admin_adds_an_endpoint_and_sends_a_test_event_in_a_browser(
        app, people, live_server, browser_page):  # noqa: F811
    page = browser_page
    log_in_page(page, live_server, "admin@example.com")
    expect(page.locator("h2", has_text="Dashboard")).to_be_visible()

    page.click("a.nav-link:has-text('Webhooks')")
    page.click("a:has-text('Add endpoint')")
    url = hook_url("sales")
    page.fill("#endpoint_url", url)
    page.fill("#description", "Sales channel")
    page.check("input[value='lead.sql']")
    page.check("input[value='slack']")
    page.click("button:has-text('Create and show the secret')")
    secret = page.locator("#secret").inner_text()
    assert SECRET.fullmatch(secret)
    expect(page.locator("#once")).to_contain_text("you will not see it again")
    shot(page, "webhook-secret")
    endpoint = WebhookEndpoint.get()
    assert (endpoint.url, endpoint.secret, endpoint.event_types, endpoint.format) == (
        url, secret, ["lead.sql"], "slack")

    page.click("a:has-text('Go to the endpoint')")
    expect(page.locator("#deliveries")).to_contain_text("No deliveries")
    assert "whsec_" not in page.content()
    page.click("button:has-text('Send a test event')")
    expect(page.locator(".alert", has_text="queued for delivery")).to_be_visible()
    [delivery] = deliveries(endpoint.id)
    row = page.locator(f"tr[data-delivery='{delivery.id}']")
    expect(row).to_contain_text("webhook.test")
    expect(row).to_contain_text(delivery.event.public_id)
    shot(page, "webhook-log")
    page.goto(f"{live_server}/admin/webhooks/")
    expect(page.locator("table.model-list")).to_contain_text("Sales channel")
    assert "whsec_" not in page.content()


def test_the_audit_log_keeps_an_endpoints_host_not_its_credential(app, people):
    """A Slack webhook's path is its posting credential; sales managers read the audit log."""
    token = "XXXXXXXXXXXXXXXXXXXXXXXX"
    endpoint = add_endpoint(f"{hook_url('services/T0000/B0000')}/{token}", format="slack")
    client = client_as(app)
    form(client, f"/admin/webhooks/change/{endpoint.id}", endpoint_url=hook_url(f"v2/{token}"),
         format="slack", active="y")
    post(client, f"/admin/webhooks/remove/{endpoint.id}")
    manager = client_as(app, "sales_manager")
    page = manager.get("/admin/audit/").text
    assert "webhook_endpoint_create" in page and "webhook_endpoint_delete" in page
    assert token not in page and "127.0.0.1" in page
