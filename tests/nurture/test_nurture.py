"""Nurture through real RQ jobs and SMTP with the clock moved by time-machine: a sequence
on schedule inside send hours, every stop rule, RFC 8058 one-click unsubscribe, tracked
clicks, re-engagement."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
import time_machine

from service import lifecycle
from service.core.db import utcnow
from service.core.models import Activity, Enrollment, Lead, OutboxEmail, Suppression
from service.core.runtime import runtime
from service.handoffs.actions import reject_handoff
from service.intake.activity import ingest
from service.intake.event import Event
from service.leads.gdpr import erase_lead
from service.nurture import sequences as nurture
from service.nurture.suppression import is_suppressed, suppress
from tests.conftest import run_worker
from tests.factories import promoted

FRIDAY_EVENING = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
TRIO = {"steps": [
    {"delay_days": 2, "business_days": True, "template": "checkin",
     "subject": "{{ lead.first_name or 'Hi' }}, anything we can help with?"},
    {"delay_days": 7, "template": "guide", "subject": "A guide"},
    {"delay_days": 14, "template": "last_call", "subject": "Last call"}]}
SETTINGS = {
    "nurture.sequences": {"default": TRIO}, "nurture.time_zone": "Europe/London",
    "nurture.send_hours": "09:00-17:00", "web.base_url": "https://leadbridge.example.com",
    "handoff.reject_reasons": {"later": {"label": "Later", "outcome": "nurture:default"},
                               "no": {"label": "No", "outcome": "disqualify"}}}


@pytest.fixture
def nurture_app(make_app, rep):
    return make_app(**SETTINGS)


def rejected_lead(app, rep, at=FRIDAY_EVENING, email="ada@example.com"):
    handoff = promoted(rep, email, at=at, fields={"first_name": "Ada"})
    reject_handoff(handoff.id, reason="later", notes="", actor=rep.email,
                   settings=runtime.settings, now=at)
    return Lead.get_by_id(handoff.lead_id)


def sweep():
    runtime.queue.enqueue("workers.jobs.sweep_nurture")
    run_worker()


def nurture_mail(smtp):
    return [m for m in smtp.messages if m["List-Unsubscribe"]]


def test_three_steps_on_schedule_in_send_hours(nurture_app, rep, smtp):
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        lead = rejected_lead(nurture_app, rep)
        enrollment = Enrollment.get(Enrollment.lead == lead.id)
        first = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # Tue 18:00 → Wed 09:00 London
        assert enrollment.next_due_at == first
        clock.move_to(first - timedelta(minutes=1))
        sweep()
        assert nurture_mail(smtp) == []
        for due, subject in ((first, "Ada, anything we can help with?"),
                             (first + timedelta(days=7), "A guide"),
                             (first + timedelta(days=21), "Last call")):
            clock.move_to(due)
            sweep()
            sweep()
            assert nurture_mail(smtp)[-1]["Subject"] == subject
        assert len(nurture_mail(smtp)) == 3
        clock.move_to(first + timedelta(days=90))
        sweep()
    assert len(nurture_mail(smtp)) == 3
    done = Enrollment.get_by_id(enrollment.id)
    assert (done.status, done.stop_reason, done.step) == ("finished", "finished", 3)
    assert all(m.get_body(("html",)).get_content().count("1 Example Street") == 1
               for m in nurture_mail(smtp))


def test_rfc8058_headers_and_one_click(nurture_app, rep, smtp):
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        lead = rejected_lead(nurture_app, rep)
        clock.move_to(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        sweep()
    message = nurture_mail(smtp)[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    targets = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert targets[0].startswith("https://leadbridge.example.com/u/")
    assert targets[1].startswith("mailto:unsubscribe@example.com?subject=unsubscribe")
    assert targets[0] in message.get_body(("html",)).get_content()
    assert targets[0] in message.get_body(("plain",)).get_content()
    path = targets[0].removeprefix("https://leadbridge.example.com")
    client = nurture_app.test_client()
    for _ in range(5):
        page = client.get(path)
        assert page.status_code == 200 and "Unsubscribe from all marketing email" in page.text
        assert client.head(path).status_code == 200
    assert Suppression.select().count() == 0
    answer = client.post(path, data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200 and answer.data == b""
    entry = Suppression.get()
    assert (entry.email, entry.reason) == ("ada@example.com", "unsubscribe")
    assert Enrollment.get(Enrollment.lead == lead.id).stop_reason == "unsubscribe"
    assert client.post("/u/tampered").status_code == 400


def test_unsubscribe_stops_a_step_already_queued(nurture_app, rep, smtp):
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        lead = rejected_lead(nurture_app, rep)
        clock.move_to(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        nurture.sweep(settings=runtime.settings, now=utcnow())
        queued = OutboxEmail.get(OutboxEmail.to_prospect == True)  # noqa: E712
        assert f"send-email-{queued.id}" in runtime.queue.job_ids, "its send job is waiting"
        suppress(lead.email, reason="unsubscribe", source="link", now=utcnow())
        run_worker()
    assert nurture_mail(smtp) == []
    skipped = OutboxEmail.get_by_id(queued.id)
    assert (skipped.sent_at, skipped.skip_reason) == (None, "suppressed")


@pytest.mark.parametrize("stop, reason", [
    ("unsubscribe", "unsubscribe"), ("hard_bounce", "hard_bounce"),
    ("complaint", "complaint"), ("promotion", "promoted"), ("sql", "sql")])
def test_stop_rules(nurture_app, rep, smtp, stop, reason):
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        lead = rejected_lead(nurture_app, rep)
        clock.move_to(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        sweep()
        assert len(nurture_mail(smtp)) == 1
        now = utcnow()
        if stop in ("unsubscribe", "hard_bounce", "complaint"):
            suppress(lead.email, reason=stop, source="test", now=now)
        elif stop == "promotion":
            promoted(rep, lead, at=now)
        else:  # an outbound SQL straight from nurture
            lifecycle.register_outbound(lead.email, fields={}, rep_id=rep.id, notes="",
                                        bant={"budget": "likely", "authority": "influencer",
                                              "need": "clear", "timeline": "lt_3m"},
                                        actor="sam@example.com", now=now)
        clock.move_to(datetime(2026, 12, 30, 9, 0, tzinfo=UTC))
        sweep()
    assert len(nurture_mail(smtp)) == 1
    enrollment = Enrollment.get(Enrollment.lead == lead.id)
    assert (enrollment.status, enrollment.stop_reason) == ("stopped", reason)


def test_tracked_click(nurture_app, rep, smtp):
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        rejected_lead(nurture_app, rep)
        clock.move_to(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        sweep()
    text = nurture_mail(smtp)[0].get_body(("plain",)).get_content()
    link = re.search(r"https://leadbridge\.example\.com(/c/\S+)", text).group(1)
    client = nurture_app.test_client()
    assert client.head(link).status_code == 302
    assert Activity.select().where(Activity.type == "email_click").count() == 0
    response = client.get(link)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://www.example.com/tour"
    click = Activity.get(Activity.type == "email_click")
    assert click.properties["url"] == "https://www.example.com/tour"
    assert client.get(link[:-4] + "abcd").status_code == 400


def test_links_of_an_erased_lead_name_nobody_after_it(nurture_app, rep, smtp):
    """Before ids were kept for good, SQLite gave the next lead, handoff and email the ids
    of the erased ones, and the erased person's old links acted on the new person."""
    root = "https://leadbridge.example.com"
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        ada = rejected_lead(nurture_app, rep)
        clock.move_to(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        sweep()
        mail = nurture_mail(smtp)[0]
        unsubscribe = re.search(r"<([^>]+)>", mail["List-Unsubscribe"]).group(1)
        click = re.search(rf"{root}(/c/\S+)", mail.get_body(("plain",)).get_content()).group(1)
        erase_lead(ada.id, actor="dpo@example.com", now=utcnow(),
                   data_dir=Path(runtime.settings.data_dir))
        bob = rejected_lead(nurture_app, rep, at=utcnow(), email="bob@example.com")
        clock.move_to(datetime(2026, 12, 4, 9, 0, tzinfo=UTC))
        sweep()
    assert [parseaddr(m["To"])[1] for m in nurture_mail(smtp)] == [ada.email, bob.email]
    client = nurture_app.test_client()
    path = unsubscribe.removeprefix(root)
    page = client.get(path)
    assert page.status_code == 410
    assert "belongs to a record that no longer exists" in page.text
    assert "bob@example.com" not in page.text
    one_click = client.post(path, data="List-Unsubscribe=One-Click",
                            content_type="application/x-www-form-urlencoded")
    assert one_click.status_code == 410
    assert client.post(path).status_code == 410
    assert not is_suppressed(bob.email)
    assert Enrollment.get(Enrollment.lead == bob.id).status == "active"
    clicked = client.get(click)
    assert clicked.status_code == 410 and "no longer exists" in clicked.text
    assert Activity.select().where(Activity.type == "email_click").count() == 0


@pytest.mark.parametrize("auto", [False, True])
def test_reengagement(make_app, rep, smtp, auto):
    app = make_app(**SETTINGS, **{"nurture.auto_repromote": auto,
                                  "handoff.auto_promoter": "mia@example.com"})
    lead = rejected_lead(app, rep, at=utcnow())
    now = utcnow()
    ingest([Event(type="page_view", occurred_at=now, email=lead.email)], source="t",
           settings=runtime.settings, now=now)
    assert Lead.get_by_id(lead.id).re_engaged_at is None, "a page view is not high intent"
    ingest([Event(type="pricing_page_view", occurred_at=now, email=lead.email)], source="t",
           settings=runtime.settings, now=now)
    fresh = Lead.get_by_id(lead.id)
    enrollment = Enrollment.get(Enrollment.lead == lead.id)
    if auto:
        assert fresh.stage == "mql" and enrollment.stop_reason == "promoted"
    else:
        assert fresh.re_engaged_at is not None and fresh.stage == "nurture"
        run_worker()
        note = [m for m in smtp.messages if "interested again" in m["Subject"]]
        assert [parseaddr(m["To"])[1] for m in note] == ["mia@example.com"]


def test_night_send_hours_run_past_midnight(make_app, rep, smtp):
    app = make_app(**{**SETTINGS, "nurture.send_hours": "22:00-06:00"})
    monday = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # London keeps UTC in November
    wednesday = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # two business days on, 01:00
    with time_machine.travel(monday, tick=False) as clock:
        lead = rejected_lead(app, rep, at=monday)
        clock.move_to(wednesday)
        sweep()
        assert [m["Subject"] for m in nurture_mail(smtp)] == [
            "Ada, anything we can help with?"], "Tuesday night's send hours run until 06:00"
    enrollment = Enrollment.get(Enrollment.lead == lead.id)
    assert enrollment.next_due_at == wednesday + timedelta(days=7)


def test_send_hours_follow_the_lead_time_zone(nurture_app):
    settings = runtime.settings
    step = nurture.Step(delay_days=1, business_days=False, template="guide", subject="x")
    monday_noon_utc = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    in_london = nurture.due_time(monday_noon_utc, step, nurture.send_calendar(settings))
    assert in_london == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    tokyo = nurture.send_calendar(settings, "Asia/Tokyo")
    assert nurture.due_time(monday_noon_utc, step, tokyo) == datetime(
        2026, 11, 25, 0, 0, tzinfo=UTC), "Tuesday 21:00 in Tokyo waits for Wednesday 09:00"
    assert nurture.send_calendar(settings, "Not/AZone").zone == "Europe/London"
