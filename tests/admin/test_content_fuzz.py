"""The panel's new forms under arbitrary input (sequence steps, reject reasons, saved views):
never a 5xx; a form either saves (a redirect, one new version) or comes back with its
message (200, or 400 for input no form takes) and changes nothing."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.content import store
from service.core.models import SavedView
from tests.conftest import csrf_token, logged_in

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*>')
text = st.text(st.characters(codec="utf-8"), max_size=80) | st.sampled_from(
    ["", " ", "-1", "0", "3", "1e9", "99999999999999999999", "{{", "{{ lead.nope }}",
     "nurture:default", "nurture:nowhere", "disqualify", "\x00", "a\r\nBcc: x@y"])


@pytest.fixture
def client(app, now):
    return logged_in(app, "mia@example.com", "marketer", now)


def hidden_fields(page: str) -> dict:
    """The form's hidden inputs as the browser would send them (CSRF, the version loaded)."""
    fields = {}
    for tag in HIDDEN.findall(page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


def versions(kind: str, key: str) -> int:
    return len(store.history(kind, key))


@FUZZ
@given(steps=st.lists(st.tuples(text, st.booleans(), text, text, st.booleans()), max_size=4))
def test_sequence_steps(client, steps):
    page = client.get("/admin/sequences/edit/default").text
    form = hidden_fields(page)
    for i, (delay, business, template, subject, remove) in enumerate(steps):
        form |= {f"steps-{i}-delay_days": delay, f"steps-{i}-template": template,
                 f"steps-{i}-subject": subject}
        form |= {f"steps-{i}-business_days": "y"} if business else {}
        form |= {f"steps-{i}-remove": "y"} if remove else {}
    before = versions(store.SEQUENCE, "default")
    response = client.post("/admin/sequences/edit/default", data=form)
    assert response.status_code in (200, 302, 400), response.status_code
    assert versions(store.SEQUENCE, "default") == before + (response.status_code == 302)


@FUZZ
@given(reasons=st.lists(st.tuples(text, text, text, st.booleans()), max_size=4))
def test_reject_reasons(client, reasons):
    form = hidden_fields(client.get("/admin/reject_reasons/").text)
    for i, (code, label, outcome, remove) in enumerate(reasons):
        form |= {f"reasons-{i}-code": code, f"reasons-{i}-label": label,
                 f"reasons-{i}-outcome": outcome}
        form |= {f"reasons-{i}-remove": "y"} if remove else {}
    before = versions(store.REASONS, store.REASONS_KEY)
    response = client.post("/admin/reject_reasons/", data=form)
    assert response.status_code in (200, 302, 400), response.status_code
    assert versions(store.REASONS, store.REASONS_KEY) == before + (response.status_code == 302)


@FUZZ
@given(endpoint=text | st.sampled_from(["lead", "pending", "suggested"]), name=text,
       query=text)
def test_saved_views(client, endpoint, name, query):
    token = csrf_token(client.get("/admin/lead/").text)
    before = SavedView.select().count()
    response = client.post("/admin/saved/", data={
        "csrf_token": token, "endpoint": endpoint, "name": name, "query": query})
    assert response.status_code in (302, 400, 404), response.status_code
    assert SavedView.select().count() - before in (0, 1)
    if response.status_code != 302:
        assert SavedView.select().count() == before
