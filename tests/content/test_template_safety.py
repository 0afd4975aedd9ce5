"""What a stored template may do: bounded work (refused at save, failed cleanly at send), every
check error a refusal with its line (never a 500), the unsubscribe footer and the postal
address always there, nothing that passes the save check and fails at send, the subject a
body shows as the recipient reads it, and a test to oneself for the sample lead."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import time_machine

from service.accounts.users import create_user
from service.content import emails as content_emails
from service.content import store, templates
from service.core.db import utcnow
from service.core.errors import InvalidInput
from service.core.models import ContentVersion, Enrollment, OutboxEmail
from service.core.runtime import runtime
from service.handoffs.actions import reject_handoff
from service.nurture import sequences as nurture
from tests.conftest import PASSWORD, csrf_token, log_in, logged_in, run_worker
from tests.content.forms import hidden_fields
from tests.factories import promoted

FRIDAY = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("app")
TEXT = '{% extends "nurture/base.txt" %}\n{% block content %}\nHello\n{% endblock %}\n'


def html(content: str, after: str = "") -> str:
    return ('{% extends "nurture/base.html" %}\n{% block content %}\n' + content
            + "\n{% endblock %}\n" + after)


def save(html_source: str, text_source: str = TEXT, name: str = "checkin"):
    return content_emails.save_template(name, html=html_source, text=text_source,
                                        author="mia@example.com", now=utcnow())


@pytest.fixture
def marketer(app, now):
    return logged_in(app, "mia@example.com", "marketer", now)


def post_template(client, name: str, html_source: str, text_source: str = TEXT):
    page = client.get(f"/admin/email_templates/edit/{name}").text
    return client.post(f"/admin/email_templates/edit/{name}", data={
        **hidden_fields(page), "html": html_source, "text": text_source,
        "csrf_token": csrf_token(page)})


def nurture_mail(smtp):
    return [m for m in smtp.messages if m["List-Unsubscribe"]]


def first_email_to(rep, fields: dict) -> OutboxEmail:
    """The default sequence's first email (nurture/checkin) to a lead with these fields, sent
    through the sweep and a real worker."""
    with time_machine.travel(FRIDAY, tick=False) as clock:
        handoff = promoted(rep, "bo@example.com", at=FRIDAY, fields=fields)
        reject_handoff(handoff.id, reason="not_ready", notes="", actor=rep.email,
                       settings=runtime.settings, now=FRIDAY)
        due = Enrollment.get().next_due_at
        clock.move_to(due)
        nurture.sweep(settings=runtime.settings, now=due)
        run_worker()
    return OutboxEmail.get(OutboxEmail.step == 0)


# F1: bounded work --------------------------------------------------------------------------

def test_a_huge_power_in_a_dead_branch_is_saved_at_once():
    """Never folded at compile time (it took 19 s at save): refused when run, never run."""
    started = time.monotonic()
    save(html("{% if false %}{{ 10**(10**7) > 1 }}{% endif %}<p>Hi</p>"))
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("content", "reason"), [
    ("{{ 'y' * 10**7 }}", r"line 3: SecurityError: repeating to more than 262144"),
    ("{{ 10**(10**7) }}", r"line 3: SecurityError: 10 \*\* 10000000 is a bigger number"),
    ("{% for i in range(100000) %}x{% endfor %}", r"line 3: .*range of more than 1000"),
    ("{% for i in range(1000) %}{% for j in range(100) %}x{% endfor %}{% endfor %}",
     r"line 3: .*more than 10000 loop rounds"),
    ("{% for i in range(1000) %}" + "x" * 300 + "{% endfor %}",
     r"line \d+: SecurityError: the email would be longer than 256 KB"),
    ("{% set s = 'x' * 200000 %}{{ s ~ s }}", r"line 3: .*joining to more than"),
    ("{% set s = 'x' * 200000 %}{{ s + s }}", r"line 3: .*joining to more than"),
    ("{% set s = 'x' * 1000 %}{{ s|replace('x', s) }}", r"line 3: .*replacing to more than"),
    ("{{ '%999999999d' % 1 }}", r"line 3: .*text % values is not available"),
    ("{{ ''|center(10**9) }}", r"line 3: no filter \|center"),
    ("{{ lipsum(n=10**6) }}", r"line 3: unknown variable 'lipsum'"),
    ("{{ 'x'.ljust(10**9) }}", r"line 3: only track\(url\) and range\(n\) may be called"),
])
def test_unbounded_work_is_refused_at_save_quickly(content, reason):
    before = content_emails.current_template("checkin")
    started = time.monotonic()
    with pytest.raises(InvalidInput, match=r"body\.html " + reason):
        save(html(content))
    assert time.monotonic() - started < 2
    assert content_emails.current_template("checkin").version == before.version


def test_a_version_past_the_bounds_fails_cleanly_at_send(app, rep, smtp):
    """A version stored before these checks (written straight to the table) is never sent
    half: the email fails with its reason, the worker goes on."""
    latest = content_emails.current_template("checkin")
    ContentVersion.create(kind=store.TEMPLATE, key="checkin", version=latest.version + 1,
                          author="before the checks", data={
                              "html": html("{% for i in range(1000) %}" + "y" * 300
                                           + "{% endfor %}"), "text": TEXT})
    row = first_email_to(rep, {"first_name": "Bo"})
    assert row.sent_at is None and row.failed_at is not None
    assert "longer than 256 KB" in row.last_error
    assert nurture_mail(smtp) == []
    create_user("mia@example.com", role="marketer", password=PASSWORD, now=utcnow())
    client = app.test_client()
    log_in(client, "mia@example.com")
    preview = client.get(f"/admin/email_templates/preview/checkin/{latest.version + 1}")
    assert preview.status_code == 422 and "longer than 256 KB" in preview.text
    assert preview.headers["Content-Security-Policy"].startswith("sandbox")


# F2: every check error is a refusal with a line --------------------------------------------

@pytest.mark.parametrize("content", [
    "{{ 10**5000 }}", "{{ " + "9" * 5000 + " }}", "{{ " + "(" * 400 + "1" + ")" * 400 + " }}"])
def test_what_the_check_meets_is_a_refusal_with_its_line_never_a_500(app, marketer, content):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    answer = post_template(marketer, "checkin", html(content))
    assert answer.status_code == 200
    assert "body.html line " in answer.text
    assert content_emails.current_template("checkin").version == 1


# F3: the footer stays ------------------------------------------------------------------------

@pytest.mark.parametrize(("html_source", "text_source", "reason"), [
    (html("<p>Buy now</p>", "{% block footer %}{% endblock %}\n"), TEXT,
     r"body\.html line 5: after the extends only \{% block content %\}"),
    (html("<p>Buy</p>{% block footer %}{% endblock %}"), TEXT,
     r"body\.html line 3: the only block a template may fill is content"),
    (html("<p>Buy</p>"), TEXT + "{% block footer %}{% endblock %}\n",
     r"body\.txt line 5: after the extends only"),
    (html("{% set x %}{{ unsubscribe_url }}{% endset %}"), TEXT,
     r"body\.html line 3: \{% set %\}…\{% endset %\} is not available"),
])
def test_the_unsubscribe_footer_cannot_be_dropped(html_source, text_source, reason):
    with pytest.raises(InvalidInput, match=reason):
        save(html_source, text_source)


def test_every_sent_email_has_the_unsubscribe_link_and_the_address(app, rep, smtp):
    save(html("<p>Plain</p>"))
    first_email_to(rep, {"first_name": "Bo"})
    message = nurture_mail(smtp)[0]
    address = runtime.settings.mail.postal_address
    for part in ("plain", "html"):
        body = message.get_body((part,)).get_content()
        assert "/u/" in body and "Unsubscribe" in body and address in body, part


# F4: what passes the save check goes out -----------------------------------------------------

@pytest.mark.parametrize(("content", "reason"), [
    ("{% if lead.country %}<p>{{ lead.country.title_case() }}</p>{% endif %}",
     r"line 3: .*title_case|line 3: only track\(url\) and range\(n\) may be called"),
    ("{% if lead.country == 'FR' %}{{ lead.company.upper() }}{% endif %}",
     r"line 3: only track\(url\) and range\(n\) may be called"),
    ("{% set l = lead %}{% if lead.phone %}{{ l.id }}{% endif %}",
     r"line 3: UndefinedError: .* has no attribute 'id'"),
    ("{{ lead['id'] }}", r"line 3: a lead has no 'id'"),
    ("{% if lead.country == 'FR' %}{{ lead|attr('id') }}{% endif %}",
     r"line 3: no filter \|attr"),
    ("{% if not lead.company %}{{ 1 / 0 }}{% endif %}",
     r"line 3: ZeroDivisionError: .*\(with a lead whose fields are all empty\)"),
])
def test_what_would_fail_at_send_is_refused_at_save(content, reason):
    with pytest.raises(InvalidInput, match=r"body\.html " + reason):
        save(html(content))


def test_a_letter_of_an_empty_field_is_empty_and_the_email_goes(app, rep, smtp):
    save(html("<p>Dear {{ lead.first_name[0] }}{{ lead.last_name[:1] }}.</p>"))
    row = first_email_to(rep, {"first_name": "", "last_name": ""})
    assert row.failed_at is None and row.sent_at is not None, row.last_error
    assert "Dear ." in nurture_mail(smtp)[0].get_body(("html",)).get_content()


def test_a_template_sees_the_leads_fields_as_text_and_nothing_else(app, rep, smtp):
    save(html("<p>[{{ lead.first_name }}|{{ lead.phone }}|{{ lead.company_size }}|"
              "{{ lead.name }}]</p>"))
    first_email_to(rep, {"first_name": "Bo", "last_name": "Li"})
    assert "[Bo||" in nurture_mail(smtp)[0].get_body(("html",)).get_content()
    assert "|Bo Li]" in nurture_mail(smtp)[0].get_body(("html",)).get_content()


# F7: {{ subject }} is the subject as read ------------------------------------------------------

def test_a_body_shows_the_rendered_subject(app, rep, smtp, marketer):
    made = save(html("<p>Re: {{ subject }}</p>"), TEXT.replace("Hello", "Re: {{ subject }}"))
    first_email_to(rep, {"first_name": "Ada"})
    message = nurture_mail(smtp)[0]
    assert message["Subject"] == "Ada, anything we can help with?"
    for part in ("plain", "html"):
        assert "Re: Ada, anything we can help with?" in message.get_body((part,)).get_content()
    preview = marketer.get("/admin/sequences/preview/default/0?part=text").text
    assert "Re: Sam, anything we can help with?" in preview and "{{" not in preview
    subject, text, _ = content_emails.render("checkin", made.version, templates.sample_context(
        subject="{{ lead.company }} news"))
    assert subject == "Sample Co news" and "Re: Sample Co news" in text


def test_a_subject_cannot_show_itself():
    with pytest.raises(InvalidInput, match=r"subject line 1: unknown variable 'subject'"):
        templates.check_subject("Re: {{ subject }}")


# The test to oneself ---------------------------------------------------------------------------

def test_a_test_to_oneself_uses_the_sample_lead_with_its_fields_filled(app, smtp, marketer):
    save(html("<p>Hi {{ lead.first_name }} of {{ lead.company }}, {{ lead.title }}</p>"),
         name="guide")
    page = marketer.get("/admin/email_templates/edit/guide")
    assert "the sample lead: Sam Sample" in page.text
    marketer.post("/admin/email_templates/test/guide/2",
                  data={"csrf_token": csrf_token(page.text)})
    run_worker()
    assert [m["To"] for m in smtp.messages] == ["mia@example.com"]
    assert "Hi Sam of Sample Co, Head of Sales" in smtp.messages[0].get_body(
        ("html",)).get_content()
