"""The panel in a real browser: Playwright driving Debian's chromium against `leadbridge web`.
Screenshots land in test-artifacts/. Each test also fails if the page's Content-Security-Policy
blocked a script or handler (Chromium reports that on the console)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from service.accounts.users import create_user
from service.core.models import Handoff, Lead, Rep
from tests import factories
from tests.conftest import PASSWORD, ROOT
from tests.factories import record_activity

ARTIFACTS = ROOT / "test-artifacts"
# The panel theme's stylesheet imports a Google web font; the CSP blocks that on purpose
# (no third-party requests from the panel) and the system font stands in.
WEB_FONT = "https://fonts.googleapis.com/"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                      accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(15000)
        refused = []
        page.on("console", lambda message: refused.append(message.text) if (
            "Content Security Policy" in message.text and WEB_FONT not in message.text) else None)
        yield page
        context.close()
        browser.close()
    assert refused == [], "\n".join(refused)


def log_in_page(page, live_server: str, email: str) -> None:
    """Log in through the panel's form, as a person would."""
    page.goto(f"{live_server}/admin/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_marketer_day_in_the_panel(app, rep, now, live_server, browser_page):
    Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    for first, company in (("Ada", "Engines"), ("Grace", "Compilers"), ("Linus", "Kernels")):
        record_activity(f"{first.lower()}@{company.lower()}.example.com", type="page_view",
                        source="t", occurred_at=now, now=now,
                        fields={"first_name": first, "company": company})
    factories.promoted(rep, "old@example.com", at=now, actor="m", activity="page_view")
    create_user("mia@example.com", role="marketer", password=PASSWORD, now=now)
    page = browser_page

    log_in_page(page, live_server, "mia@example.com")
    expect(page.locator("h2", has_text="Dashboard")).to_be_visible()

    page.goto(f"{live_server}/admin/lead/")
    page.fill("input[name=search]", "example.com")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    expect(page.locator("table.model-list tbody tr")).to_have_count(4)
    page.goto(f"{live_server}/admin/lead/?flt1_stage_equals=lead")
    rows = page.locator("table.model-list tbody tr")
    expect(rows).to_have_count(3)
    shot(page, "leads-filtered")
    page.click("a:has-text('Add Filter')")
    page.click("a.filter:has-text('Company')")
    expect(page.locator("#filter_form .remove-filter", has_text="Company")).to_be_visible()
    page.goto(f"{live_server}/admin/lead/?flt1_stage_equals=lead")
    ada = Lead.get(Lead.first_name == "Ada")
    grace = Lead.get(Lead.first_name == "Grace")
    for lead in (ada, grace):
        page.check(f"input[name=rowid][value='{lead.id}']")
    page.click("text=With selected")
    page.click("a:has-text('Promote to MQL')")
    page.wait_for_url("**/admin/lead/promote/**")
    page.select_option("#rep", label="Jordan Rep <jordan.rep@example.com>")
    page.fill("#note", "Both asked for a demo at the fair.")
    shot(page, "promote-dialog")
    page.click("button:has-text('Promote and email the rep')")
    expect(page.locator(".alert", has_text="Promoted 2 lead(s)")).to_be_visible()
    promoted = Handoff.select().where(Handoff.lead.in_([ada.id, grace.id]))
    assert sorted(h.rep.email for h in promoted) == ["jordan.rep@example.com"] * 2
    assert {Lead.get_by_id(i).stage for i in (ada.id, grace.id)} == {"mql"}

    page.goto(f"{live_server}/admin/?period=week")
    cards = page.locator("[data-chart]")
    expect(cards).to_have_count(9)  # and the UTM source and campaign chart
    for index in range(9):
        expect(cards.nth(index).locator("svg.chart")).to_be_visible()
    shot(page, "dashboard")
    with page.expect_download() as download:
        page.locator("[data-chart=mqls] a:has-text('CSV')").click()
    csv_path = Path(download.value.path())
    assert csv_path.read_text().splitlines()[0] == "period,mqls,benchmark"
    shutil.copy(csv_path, ARTIFACTS / "mqls.csv")

    page.click("button:has-text('Log out')")
    page.wait_for_url("**/admin/login")
    page.goto(f"{live_server}/admin/lead/")
    assert "/admin/login" in page.url
    shot(page, "logged-out")


def test_lead_workspace_and_saved_view_in_the_browser(app, rep, now, live_server, browser_page):
    """A manager marks an SQL won from its page (the confirm dialog allowed by the CSP), then
    saves a filtered handoff list and opens it from its link."""
    from service import lifecycle

    handoff = factories.promoted(rep, "won@example.com", at=now, actor="m", activity="page_view")
    lifecycle.accept(handoff.id, bant={"need": "clear"}, notes="", actor="r", now=now,
                     requires=[])
    create_user("sam@example.com", role="sales_manager", password=PASSWORD, now=now)
    page = browser_page
    log_in_page(page, live_server, "sam@example.com")
    page.goto(f"{live_server}/admin/lead/details/?id={handoff.lead_id}")
    expect(page.locator(".lead-stage")).to_have_text("sql")
    expect(page.locator("tr[data-kind=handoff]")).to_have_count(1)
    shot(page, "lead-workspace")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("button[data-action=win]")
    expect(page.locator(".lead-stage")).to_have_text("customer")
    assert asked == ["Mark this SQL as a customer?"]
    page.goto(f"{live_server}/admin/handoff/?flt0_rep_equals={rep.id}")
    page.fill("#saved-view-name", "Riley's")
    page.click("button:has-text('Save this view')")
    expect(page.locator(".saved-view a", has_text="Riley's")).to_be_visible()
    expect(page.locator("table.model-list tbody tr")).to_have_count(1)
    shot(page, "handoffs-saved-view")
