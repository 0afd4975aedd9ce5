"""Each email keeps the content it was made with: a sequence edited mid-way changes only the
steps still to come, with a real worker and a real SMTP server and no restart. A test to
oneself and a new MQL definition's email to the reps go the same way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from service.content import sequences as content_sequences
from service.core.models import Enrollment, OutboxEmail, Rep
from service.core.runtime import runtime
from service.handoffs.actions import reject_handoff
from service.leads.definitions import add_definition
from service.nurture import sequences as nurture
from tests.conftest import csrf_token, log_in, logged_in, run_worker
from tests.content.forms import hidden_fields
from tests.factories import promoted

FRIDAY = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def due() -> datetime:
    return Enrollment.get().next_due_at


@pytest.fixture
def marketer_client(app, now):
    return logged_in(app, "mia@example.com", "marketer", now)


def post_form(client, path: str, fields: dict):
    page = client.get(path)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    answer = client.post(path, data={**hidden_fields(page.text), **fields,
                                     "csrf_token": csrf_token(page.text)})
    assert answer.status_code == 302, answer.text
    return answer


def nurture_mail(smtp):
    return [m for m in smtp.messages if m["List-Unsubscribe"]]


def text(message) -> str:
    return message.get_body(("plain",)).get_content()


def sweep():
    runtime.queue.enqueue("workers.jobs.sweep_nurture")
    run_worker()


def edit_template(client, name: str, words: str) -> None:
    post_form(client, f"/admin/email_templates/edit/{name}", {
        "html": '{% extends "nurture/base.html" %}\n{% block content %}\n'
                f"<p>{words}, {{{{ lead.first_name }}}}</p>\n{{% endblock %}}\n",
        "text": '{% extends "nurture/base.txt" %}\n{% block content %}\n'
                f"{words}, {{{{ lead.first_name }}}}\n{{% endblock %}}\n"})


def test_an_edit_changes_the_steps_to_come_never_one_sent_or_queued(app, rep, smtp,
                                                                    marketer_client):
    with time_machine.travel(FRIDAY, tick=False) as clock:
        handoff = promoted(rep, "ada@example.com", at=FRIDAY, fields={"first_name": "Ada"})
        reject_handoff(handoff.id, reason="not_ready", notes="", actor=rep.email,
                       settings=runtime.settings, now=FRIDAY)
        clock.move_to(due())
        sweep()
        assert [m["Subject"] for m in nurture_mail(smtp)] == ["Ada, anything we can help with?"]
        sent = OutboxEmail.get(OutboxEmail.step == 0)
        kept = (sent.subject, sent.body_text, sent.body_html, dict(sent.context))
        log_in(marketer_client, "mia@example.com")  # days later: a new session

        edit_template(marketer_client, "checkin", "Checking in again")
        edit_template(marketer_client, "guide", "Our new guide is out")
        steps = content_sequences.current_sequence("default").data["steps"]
        fields = {}
        for i, step in enumerate(steps):
            fields.update({f"steps-{i}-delay_days": str(step["delay_days"]),
                           f"steps-{i}-template": step["template"],
                           f"steps-{i}-subject": step["subject"],
                           f"steps-{i}-business_days": "y" if step["business_days"] else ""})
        fields["steps-0-subject"] = "Edited first step"
        fields["steps-1-subject"] = "The new guide, {{ lead.first_name }}"
        post_form(marketer_client, "/admin/sequences/edit/default", fields)

        sent = OutboxEmail.get_by_id(sent.id)
        assert (sent.subject, sent.body_text, sent.body_html, dict(sent.context)) == kept
        assert "Checking in again" not in sent.body_text
        assert kept[3]["sequence_version"] == 1 and kept[3]["template_version"] == 1

        clock.move_to(due())
        sweep()
        assert [m["Subject"] for m in nurture_mail(smtp)] == [
            "Ada, anything we can help with?", "The new guide, Ada"]
        assert "Our new guide is out, Ada" in text(nurture_mail(smtp)[-1])
        second = OutboxEmail.get(OutboxEmail.step == 1)
        assert second.context["sequence_version"] == 2
        assert second.context["template_version"] == 2


def test_a_queued_email_keeps_its_version_and_removed_steps_end_the_enrollment(
        app, rep, smtp, marketer_client):
    with time_machine.travel(FRIDAY, tick=False) as clock:
        handoff = promoted(rep, "ada@example.com", at=FRIDAY, fields={"first_name": "Ada"})
        reject_handoff(handoff.id, reason="not_ready", notes="", actor=rep.email,
                       settings=runtime.settings, now=FRIDAY)
        first = due()
        clock.move_to(first)
        nurture.sweep(settings=runtime.settings, now=first)  # queued, not sent yet
        log_in(marketer_client, "mia@example.com")  # days later: a new session
        edit_template(marketer_client, "checkin", "Too late for the queued one")
        post_form(marketer_client, "/admin/sequences/edit/default", {
            "steps-0-delay_days": "3", "steps-0-template": "checkin",
            "steps-0-subject": "Only step"})
        run_worker()
        assert len(nurture_mail(smtp)) == 1
        first = text(nurture_mail(smtp)[0])
        assert "Too late" not in first and "Hi Ada" in first
        clock.move_to(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
        sweep()
        assert len(nurture_mail(smtp)) == 1
        enrollment = Enrollment.get()
        assert (enrollment.status, enrollment.stop_reason) == ("finished", "finished")


def test_send_a_test_to_me(app, smtp, marketer_client):
    page = marketer_client.get("/admin/email_templates/edit/guide")
    marketer_client.post("/admin/email_templates/test/guide/1",
                         data={"csrf_token": csrf_token(page.text)})
    page = marketer_client.get("/admin/sequences/")
    marketer_client.post("/admin/sequences/test/default/2",
                         data={"csrf_token": csrf_token(page.text)})
    run_worker()
    assert [m["To"] for m in smtp.messages] == ["mia@example.com"] * 2
    assert [m["Subject"] for m in smtp.messages] == ["Test: guide v1", "Shall we stay in touch?"]
    assert "Teams like yours often ask" in smtp.text(0)


def test_a_new_mql_definition_reaches_every_active_rep(app, rep, smtp, now):
    Rep.create(email="away.rep@example.com", name="Away", active=False)
    Rep.create(email="sky.rep@example.com", name="Sky Rep")
    add_definition("mql", text="Score 60+ and a work email.", agreed_by_marketing="Mia",
                   agreed_by_sales="Sam", agreed_at=now)
    add_definition("sql", text="Budget known.", agreed_by_marketing="Mia",
                   agreed_by_sales="Sam", agreed_at=now)
    add_definition("mql", text="Score 70+, a work email and\na company of 50 or more.",
                   agreed_by_marketing="Mia", agreed_by_sales="Sam", agreed_at=now)
    run_worker()
    assert sorted(m["To"] for m in smtp.messages) == sorted(
        ["Riley Rep <riley.rep@example.com>", "Sky Rep <sky.rep@example.com>"] * 2)
    last = [m for m in smtp.messages if "version 2" in m["Subject"]]
    assert len(last) == 2
    text = last[0].get_body(("plain",)).get_content()
    assert "a company of 50 or more." in text and "Score 60+ and a work email." in text
    assert all("Budget known" not in m.get_body(("plain",)).get_content()
               for m in smtp.messages)
