"""A marketer's day and a sales manager's day, walked in a real browser at a laptop's width
and at a phone's (390 px): home → a suggested lead → promote → the rep's queue page opened
from the email the rep received → the decision → its feedback on the lead page; a sequence
step edited in the panel and the next nurture email using it, the app never restarted; a
manager reassigning an overdue handoff from home. Every page is checked for sideways
scrolling on the phone, and screenshots are kept under test-artifacts/days/."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from playwright.sync_api import expect, sync_playwright

from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import Handoff, Lead, OutboxEmail, Rep
from service.core.runtime import runtime
from service.core.scores import Policy
from service.nurture import sequences
from tests.admin.phones import DESKTOP, PHONE, no_horizontal_overflow
from tests.admin.test_browser import ARGS, CHROMIUM, WEB_FONT, log_in_page
from tests.conftest import PASSWORD, ROOT, run_worker
from tests.factories import enrolled, promoted, record_activity

SHOTS = ROOT / "test-artifacts" / "days"
DEVICES = {"desktop": DESKTOP, "phone": PHONE}
QUEUE_LINK = re.compile(r"http://localhost(/r/[A-Za-z0-9_.-]+)")


@pytest.fixture(params=list(DEVICES))
def device(request) -> str:
    return request.param


@contextmanager
def browser(device: str):
    """A browser page shaped like the device; fails the test if the CSP refused anything."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = chromium.new_context(**DEVICES[device])
        page = context.new_page()
        page.set_default_timeout(15000)
        refused = []
        page.on("console", lambda message: refused.append(message.text) if (
            "Content Security Policy" in message.text and WEB_FONT not in message.text)
            else None)
        yield page
        context.close()
        chromium.close()
    assert refused == [], "\n".join(refused)


def look(page, device: str, name: str) -> None:
    """The page as it stands: no sideways scrolling on a phone; a screenshot kept."""
    page.wait_for_load_state()
    if device == "phone":
        no_horizontal_overflow(page)
    page.screenshot(path=str(SHOTS / f"{device}-{name}.png"), full_page=True)


def hot_lead(email: str, now, fields: dict) -> Lead:
    policy = Policy.from_settings(runtime.settings)
    for kind in ("contact_sales", "pricing_page_view", "trial_signup"):
        record_activity(email, type=kind, source="website", occurred_at=now, now=now,
                        policy=policy, fields=fields)
    return Lead.get(Lead.email == email)


def queue_path(smtp, to: str, subject_part: str) -> str:
    [message] = [m for m in smtp.messages
                 if to in m["To"] and subject_part in str(m["Subject"])][-1:]
    return QUEUE_LINK.search(message.get_body(("plain",)).get_content()).group(1)


def follow(page, live_server: str, link: str) -> None:
    """Follow a link of the page whose address is the public base URL (web.base_url), on the
    server under test."""
    href = page.locator(link).first.get_attribute("href")
    page.goto(live_server + href.removeprefix("http://localhost"))


def test_the_marketers_day(app, rep, smtp, live_server, device):
    now = utcnow()
    create_user("mia@example.com", role="marketer", password=PASSWORD, now=now)
    ada = hot_lead("ada.lovelace@engines.example.com", now,
                   {"first_name": "Ada", "last_name": "Lovelace", "company": "Engines Ltd"})
    with browser(device) as page:
        log_in_page(page, live_server, "mia@example.com")
        suggested = page.locator("#today-suggested")
        expect(suggested.locator(f"[data-lead='{ada.id}'] .why")).to_contain_text(
            "contact_sales")
        look(page, device, "marketer-home")

        suggested.get_by_role("link", name=re.compile("Ada")).click()
        expect(page.locator(".lead-header h4")).to_contain_text("Ada Lovelace")
        look(page, device, "marketer-lead")
        page.locator("button[data-action=promote]").click()
        page.wait_for_url("**/admin/lead/promote/**")
        page.select_option("#rep", label="Riley Rep <riley.rep@example.com>")
        page.fill("#note", "Asked for pricing twice, trial started today.")
        look(page, device, "marketer-promote")
        page.get_by_role("button", name=re.compile("Promote")).click()
        expect(page.locator(".alert-success")).to_contain_text("Promoted 1 lead(s)")
        assert Lead.get_by_id(ada.id).stage == "mql"

        run_worker()  # the rep's email goes out over SMTP
        rep_page = page.context.new_page()  # the rep never logs in: same browser, a link
        rep_page.goto(live_server + queue_path(smtp, rep.email, "Ada"))
        expect(rep_page.locator("body")).to_contain_text("Asked for pricing twice")
        look(rep_page, device, "rep-queue")
        follow(rep_page, live_server, "a.button.accept")
        for field, value in (("budget", "likely"), ("authority", "decision_maker"),
                             ("need", "clear"), ("timeline", "3_6m")):
            rep_page.select_option(f"#{field}", value)
        look(rep_page, device, "rep-accept")
        rep_page.get_by_role("button", name="Accept as SQL").click()
        expect(rep_page.locator("body")).to_contain_text("ccepted")
        look(rep_page, device, "rep-decided")
        assert Handoff.get(Handoff.lead == ada.id).status == "accepted"
        assert Lead.get_by_id(ada.id).stage == "sql"

        page.goto(f"{live_server}/admin/lead/details/?id={ada.id}")
        timeline = page.locator(".lead-timeline")
        expect(timeline).to_contain_text("accepted")
        expect(timeline).to_contain_text("decision_maker")
        look(page, device, "marketer-feedback")
        run_worker()
        assert any("mia@example.com" in m["To"] for m in smtp.messages), "the decision, told"


def test_an_edited_sequence_step_is_the_next_email_without_a_restart(app, smtp, live_server,
                                                                      device):
    now = utcnow()
    create_user("mia@example.com", role="marketer", password=PASSWORD, now=now)
    started = now - timedelta(days=40)
    enrollment = enrolled("grace@compilers.example.com", at=started,
                          fields={"first_name": "Grace"})
    settings = runtime.settings
    sequences.sweep(settings=settings, now=now)  # step 1 was due long ago
    run_worker()
    first = [str(m["Subject"]) for m in smtp.messages if "grace@" in m["To"]]
    assert first == ["Grace, anything we can help with?"]

    with browser(device) as page:
        log_in_page(page, live_server, "mia@example.com")
        page.goto(f"{live_server}/admin/sequences/edit/default")
        page.fill("#steps-1-subject", "{{ lead.first_name }}, the guide we promised")
        look(page, device, "marketer-sequence-edit")
        page.get_by_role("button", name="Save as a new version").click()
        expect(page.locator(".alert-success, .alert-info").first).to_be_visible()
        page.goto(f"{live_server}/admin/sequences/history/default")
        expect(page.locator("body")).to_contain_text("mia@example.com")
        look(page, device, "marketer-sequence-history")

    due = OutboxEmail.select().count()
    sequences.sweep(settings=settings, now=now + timedelta(days=30))  # step 2 falls due
    run_worker()
    assert OutboxEmail.select().count() == due + 1
    subjects = [str(m["Subject"]) for m in smtp.messages if "grace@" in m["To"]]
    assert subjects == ["Grace, anything we can help with?", "Grace, the guide we promised"]
    sent = (OutboxEmail.select().where(OutboxEmail.enrollment == enrollment.id)
            .order_by(OutboxEmail.id))
    assert [row.subject for row in sent] == subjects, "what was sent stays as sent"


def test_a_managers_day(app, rep, smtp, live_server, device):
    now = utcnow()
    create_user("sam@example.com", role="sales_manager", password=PASSWORD, now=now)
    other = Rep.create(email="jordan.rep@example.com", name="Jordan Rep",
                       manager_email="sam@example.com")
    rep.manager_email = "sam@example.com"
    rep.save()
    late = promoted(rep, "linus@kernels.example.com", at=now - timedelta(days=3),
                    fields={"first_name": "Linus", "company": "Kernels"},
                    activity="pricing_page_view")
    run_worker()
    with browser(device) as page:
        log_in_page(page, live_server, "sam@example.com")
        overdue = page.locator(f"#today-overdue [data-handoff='{late.id}']")
        expect(overdue).to_contain_text("Linus")
        look(page, device, "manager-home")
        overdue.get_by_role("link", name="Reassign").click()
        page.select_option("#rep", label="Jordan Rep <jordan.rep@example.com>")
        look(page, device, "manager-reassign")
        page.get_by_role("button", name=re.compile("Reassign")).click()
        expect(page.locator(".alert-success")).to_be_visible()
        moved = Handoff.get(Handoff.lead == late.lead_id, Handoff.status == "pending")
        assert moved.rep_id == other.id

        run_worker()
        rep_page = page.context.new_page()
        rep_page.goto(live_server + queue_path(smtp, other.email, "Linus"))
        look(rep_page, device, "rep-queue-reassigned")
        follow(rep_page, live_server, "a.button.reject")
        rep_page.select_option("#reason", "not_ready")
        rep_page.get_by_role("button", name="Reject").click()
        expect(rep_page.locator("body")).to_contain_text("ejected")
        assert Lead.get_by_id(late.lead_id).stage == "nurture"

        page.goto(f"{live_server}/admin/lead/details/?id={late.lead_id}")
        expect(page.locator(".lead-timeline")).to_contain_text("rejected")
        look(page, device, "manager-lead")
