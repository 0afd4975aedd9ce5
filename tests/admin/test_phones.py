"""The panel on a phone (390 px, touch) and on a laptop (1280 px): every page the menu
reaches, a lead page and a handoff page do not scroll sideways; the collapsed menu opens
and leads somewhere; a manager reassigns a handoff from the phone; a list shows a screenful
of rows on the laptop. Screenshots go to tests.admin.phones.SCREENSHOTS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect, sync_playwright

from service.accounts.users import create_user
from service.core.models import Handoff, Rep
from tests import factories
from tests.admin.phones import (
    DESKTOP,
    PHONE,
    menu_links,
    no_horizontal_overflow,
    rows_in_view,
    screenshot,
)
from tests.admin.test_browser import ARGS, CHROMIUM, WEB_FONT, log_in_page
from tests.conftest import PASSWORD

LONG_EMAIL = ("procurement.department.head.for.emea.operations"
              "@a-very-long-subsidiary-name.example-holdings.example.com")
LONG_COMPANY = ("Internationale Gesellschaft für Unternehmenskommunikation und "
                "Softwareentwicklung mbH & Co. KG Niederlassungsverwaltung")


@pytest.fixture
def open_browser():
    """A function that opens a page in a fresh context with the given device options; the
    test fails if the page's Content-Security-Policy blocked anything."""
    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)

        def open_page(device: dict):
            page = browser.new_context(**device).new_page()
            page.set_default_timeout(15000)
            page.on("console", lambda m: refused.append(m.text) if (
                "Content Security Policy" in m.text and WEB_FONT not in m.text) else None)
            return page

        yield open_page
        browser.close()
    assert refused == [], "\n".join(refused)


@pytest.fixture
def busy_panel(app, rep, now):
    """Thirty leads (one with a very long address and company), a handoff pending (due
    tomorrow) and one overdue, an enrolled lead, and a marketer, a sales manager and an admin."""
    today = datetime.now(UTC).replace(microsecond=0)
    Rep.create(email="jordan.rep@example.com", name="Jordan Rep")
    for i in range(28):
        factories.new_lead(f"lead{i:02d}@example.com", at=today - timedelta(hours=i),
                           fields={"first_name": f"Lead{i}", "company": f"Company {i}"})
    overdue = factories.promoted(rep, LONG_EMAIL, at=now - timedelta(days=3),
                                 note="Asked for pricing at the fair " * 4,
                                 fields={"first_name": "Maximiliane", "company": LONG_COMPANY})
    pending = factories.promoted(rep, "fresh@example.com", at=today,
                                 fields={"first_name": "Fresh", "company": "Startup"})
    factories.enrolled(f"nurtured.{LONG_EMAIL}", at=today)
    create_user("mia@example.com", role="marketer", password=PASSWORD, now=now)
    create_user("sam.manager@example.com", role="sales_manager", password=PASSWORD, now=now)
    create_user("ada.admin@example.com", role="admin", password=PASSWORD, now=now)
    return {"overdue": overdue, "pending": pending}


def walk(page, live_server: str, name: str, extra: list[str]) -> list[str]:
    """Every page the menu links to plus `extra`, each checked for sideways scrolling and
    saved as a screenshot; the paths visited."""
    page.goto(f"{live_server}/admin/")
    paths = menu_links(page) + extra
    assert "/admin/lead/" in paths and "/admin/pending/" in paths, paths
    too_wide = []
    for path in paths:
        response = page.goto(live_server + path)
        assert response.status == 200, (path, response.status)
        screenshot(page, f"{name}{path.strip('/').replace('/', '-').replace('?', '-')}")
        try:
            no_horizontal_overflow(page)
        except AssertionError as exc:
            too_wide.append(str(exc))
    assert not too_wide, "\n".join(too_wide)
    return paths


ROLES = {  # who logs in, and the pages of theirs the menu does not link to
    "manager": ("sam.manager@example.com",
                ["/admin/rep/new/", "/admin/pending/reassign/?ids={pending}"]),
    "marketer": ("mia@example.com",
                 ["/admin/lead/edit/?id={lead}", "/admin/lead/enroll/?ids={lead}"]),
    "admin": ("ada.admin@example.com", ["/admin/user/invite/", "/admin/webhooks/add/"]),
}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_page_fits_a_phone(busy_panel, live_server, open_browser, role):
    email, own_pages = ROLES[role]
    page = open_browser(PHONE)
    page.goto(f"{live_server}/admin/login")
    no_horizontal_overflow(page)
    log_in_page(page, live_server, email)
    expect(page.locator("h2", has_text="Dashboard")).to_be_visible()
    ids = {"lead": busy_panel["overdue"].lead_id, "handoff": busy_panel["overdue"].id,
           "pending": busy_panel["pending"].id}
    extra = ["/admin/lead/details/?id={lead}", "/admin/handoff/details/?id={handoff}",
             f"/admin/lead/?search={LONG_EMAIL[:20]}", "/admin/lead/?flt1_stage_equals=mql",
             *own_pages]
    walk(page, live_server, f"phone-{role}-", [path.format(**ids) for path in extra])

    page.goto(f"{live_server}/admin/")
    menu = page.locator("#admin-navbar-collapse")
    expect(menu).to_be_hidden()
    page.tap("button.navbar-toggler")
    expect(menu).to_be_visible()
    screenshot(page, f"phone-{role}-menu-open")
    page.tap("#admin-navbar-collapse a.dropdown-toggle:has-text('Handoffs')")
    page.tap("#admin-navbar-collapse a.dropdown-item:has-text('Overdue')")
    page.wait_for_url("**/admin/overdue/")
    expect(page.locator("table.model-list tbody tr")).to_have_count(1)
    no_horizontal_overflow(page)
    # the list's other columns are there, a swipe away inside the table's own box
    assert page.locator(".table-responsive").evaluate(
        "box => [box.scrollWidth > box.clientWidth, getComputedStyle(box).overflowX]"
    ) == [True, "auto"]


def test_the_check_names_what_sticks_out(open_browser):
    page = open_browser(PHONE)
    page.set_content('<meta name="viewport" content="width=device-width, initial-scale=1">'
                     '<p>fits</p><div class="wide banner"><span>x</span></div>'
                     '<div class="scroller"><table><tr><td class="cell">y</td></tr></table></div>'
                     '<style>.wide { width: 500px } .scroller { overflow-x: auto }'
                     ' .cell { min-width: 900px }</style>')
    with pytest.raises(AssertionError) as refused:
        no_horizontal_overflow(page)
    assert "is 508 px wide in a 390 px window" in str(refused.value)  # body margin 8 px
    assert "div.wide.banner right=508 width=500" in str(refused.value)
    assert "cell" not in str(refused.value)  # inside a box that scrolls: not the page's


def test_a_manager_reassigns_from_a_phone(busy_panel, live_server, open_browser):
    handoff = busy_panel["overdue"]
    page = open_browser(PHONE)
    log_in_page(page, live_server, "sam.manager@example.com")
    page.goto(f"{live_server}/admin/overdue/")
    page.tap(f"input[name=rowid][value='{handoff.id}']")
    page.tap("text=With selected")
    page.tap("a:has-text('Reassign to another rep')")
    page.wait_for_url("**/admin/overdue/reassign/**")
    no_horizontal_overflow(page)
    submit = page.locator("button[type=submit]", has_text="Reassign")
    assert submit.bounding_box()["height"] >= 44  # a thumb's target
    page.select_option("#rep", label="Jordan Rep <jordan.rep@example.com>")
    screenshot(page, "phone-manager-reassign")
    submit.tap()
    expect(page.locator(".alert", has_text="Reassign: 1 handoff(s) done.")).to_be_visible()
    no_horizontal_overflow(page)
    moved = Handoff.get((Handoff.lead == handoff.lead_id) & (Handoff.status == "pending"))
    assert moved.rep.email == "jordan.rep@example.com"


def test_the_laptop_shows_a_screenful_of_rows(busy_panel, live_server, open_browser):
    page = open_browser(DESKTOP)
    log_in_page(page, live_server, "sam.manager@example.com")
    expect(page.locator("h2", has_text="Dashboard")).to_be_visible()
    expect(page.locator("button.navbar-toggler")).to_be_hidden()  # the menu lies open
    expect(page.locator("#admin-navbar-collapse")).to_be_visible()
    lead = busy_panel["overdue"].lead_id
    walk(page, live_server, "desktop-manager-", [f"/admin/lead/details/?id={lead}"])
    page.goto(f"{live_server}/admin/lead/")
    expect(page.locator("table.model-list tbody tr")).to_have_count(31)
    assert rows_in_view(page) >= 15  # 4 with Flask-Admin's own layout
    no_horizontal_overflow(page)
    screenshot(page, "desktop-leads")


def test_the_stylesheet_loads_before_logging_in(app):
    """The login page links the panel's stylesheet from our origin (the CSP allows only
    that) and anyone may fetch it."""
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    assert '<link href="/admin/assets/panel.css" rel="stylesheet">' in page
    sheet = client.get("/admin/assets/panel.css")
    assert sheet.status_code == 200 and sheet.mimetype == "text/css"
    assert "default-src 'self'" in client.get("/admin/login").headers["Content-Security-Policy"]
