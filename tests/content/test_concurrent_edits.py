"""Two people editing the same content: the second save is refused with who saved meanwhile,
the second person's text stays in the form, and saving again (having seen it) replaces it."""

from __future__ import annotations

import html

import pytest

from service.accounts.users import create_user
from service.content import emails as content_emails
from service.content import reasons as content_reasons
from service.content import sequences as content_sequences
from tests.conftest import PASSWORD, csrf_token, log_in
from tests.content.forms import hidden_fields

TEXT = '{% extends "nurture/base.txt" %}\n{% block content %}\nHello\n{% endblock %}\n'


def body(words: str) -> str:
    return f'{{% extends "nurture/base.html" %}}\n{{% block content %}}\n<p>{words}</p>\n' \
           '{% endblock %}\n'


@pytest.fixture
def two(app, now):
    clients = []
    for who in ("ann", "ben"):
        create_user(f"{who}@example.com", role="marketer", password=PASSWORD, now=now)
        client = app.test_client()
        assert log_in(client, f"{who}@example.com").status_code == 302
        clients.append(client)
    return clients


def opened(client, path: str) -> dict:
    page = client.get(path).text
    return {**hidden_fields(page), "csrf_token": csrf_token(page)}


def test_a_template_saved_meanwhile_is_not_overwritten(two):
    ann, ben = two
    path = "/admin/email_templates/edit/guide"
    form_a, form_b = opened(ann, path), opened(ben, path)
    assert form_a["base_version"] == form_b["base_version"] == "1"
    assert ann.post(path, data={**form_a, "html": body("Ann's fix"), "text": TEXT}
                    ).status_code == 302
    answer = ben.post(path, data={**form_b, "html": body("Ben's fix"), "text": TEXT})
    assert answer.status_code == 200
    page = html.unescape(answer.text)
    assert "version 2 was saved by ann@example.com at" in page and "meanwhile" in page
    assert "<p>Ben's fix</p>" in page  # his text is still in the form
    current = content_emails.current_template("guide")
    assert current.version == 2 and "Ann's fix" in current.data["html"]
    assert hidden_fields(answer.text)["base_version"] == "2"
    again = ben.post(path, data={**hidden_fields(answer.text), "html": body("Ben's fix"),
                                 "text": TEXT, "csrf_token": csrf_token(answer.text)})
    assert again.status_code == 302
    assert "Ben's fix" in content_emails.current_template("guide").data["html"]


def test_a_form_without_its_version_saves_nothing(two):
    ann, _ = two
    path = "/admin/email_templates/edit/guide"
    form = opened(ann, path)
    del form["base_version"]
    answer = ann.post(path, data={**form, "html": body("x"), "text": TEXT})
    assert answer.status_code == 200 and "meanwhile" in answer.text
    assert content_emails.current_template("guide").version == 1


def test_sequences_and_reasons_saved_meanwhile_are_not_overwritten(two):
    ann, ben = two
    path = "/admin/sequences/edit/default"
    form_a, form_b = opened(ann, path), opened(ben, path)
    steps = {f"steps-{i}-{field}": str(step[field])
             for i, step in enumerate(content_sequences.current_sequence("default")
                                      .data["steps"])
             for field in ("delay_days", "template", "subject")}
    assert ann.post(path, data={**form_a, **steps, "steps-0-subject": "Ann's"}
                    ).status_code == 302
    answer = ben.post(path, data={**form_b, **steps, "steps-0-subject": "Ben's"})
    assert answer.status_code == 200 and "saved by ann@example.com" in answer.text
    assert 'value="Ben&#39;s"' in answer.text
    assert content_sequences.current_sequence("default").data["steps"][0]["subject"] == "Ann's"

    path = "/admin/reject_reasons/"
    form_a, form_b = opened(ann, path), opened(ben, path)
    reason = {"reasons-0-code": "not_ready", "reasons-0-outcome": "nurture:default"}
    assert ann.post(path, data={**form_a, **reason, "reasons-0-label": "Ann's label"}
                    ).status_code == 302
    answer = ben.post(path, data={**form_b, **reason, "reasons-0-label": "Ben's label"})
    assert answer.status_code == 200 and "saved by ann@example.com" in answer.text
    assert content_reasons.reject_reasons()["not_ready"]["label"] == "Ann's label"
