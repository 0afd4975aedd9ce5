"""Recording accepted tracking events: a live worker records them within moments, two
recorders at once record each event once and in order, and an event that cannot be
recorded is set aside without holding up the rest."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from rq import Worker

from service.core.db import utcnow
from service.core.models import Activity, AnonymousActivity, InboundEvent, Lead
from service.core.runtime import runtime
from service.intake.activity import record_inbound
from service.intake.keys import create_key
from tests.conftest import ROOT, leadbridge_env, run_worker
from tests.factories import at_once, spoil_oldest_accepted
from tests.web.test_tracking import basic


def visit(client, key: str, person: int) -> None:
    """A visitor reads two pages, identifies, then watches a demo: four messages."""
    anonymous = f"visitor-{person}"
    messages = [
        {"type": "page", "anonymousId": anonymous, "properties": {"path": "/pricing"}},
        {"type": "track", "anonymousId": anonymous, "event": "Webinar Attended"},
        {"type": "identify", "anonymousId": anonymous,
         "traits": {"email": f"person{person}@example.com"}},
        {"type": "track", "anonymousId": anonymous, "event": "Demo Video Watched"},
    ]
    for n, message in enumerate(messages):
        response = client.post(f"/v1/{message['type']}", headers=basic(key),
                               json={**message, "messageId": f"{person}-{n}"})
        assert response.status_code == 200, response.text


def assert_recorded(people: range) -> None:
    assert InboundEvent.select().count() == 0 and AnonymousActivity.select().count() == 0
    for person in people:
        lead = Lead.get(Lead.email == f"person{person}@example.com")
        assert sorted(a.type for a in lead.activities) == [
            "demo_video_watched", "pricing_page_view", "webinar_attended"]


def test_a_running_worker_records_accepted_events_within_moments(app, settings_overrides):
    key = create_key("write_key", "website", sources=["website"], actor="t", now=utcnow())[1]
    env = leadbridge_env(app, settings_overrides)
    worker = subprocess.Popen([sys.executable, "-m", "service.ops.cli", "worker"], cwd=ROOT,
                              env=env)
    try:
        deadline = time.monotonic() + 30
        while not Worker.all(connection=runtime.redis):  # registered: its recorder runs
            assert time.monotonic() < deadline and worker.poll() is None, "no worker"
            time.sleep(0.1)
        client = app.test_client()
        for person in range(5):
            visit(client, key, person)
        accepted = time.monotonic()
        while InboundEvent.select().count() and time.monotonic() - accepted < 10:
            time.sleep(0.05)
        waited = time.monotonic() - accepted
        assert_recorded(range(5))
        assert waited < 2, f"recorded {waited:.1f}s after the last was accepted"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0


def test_two_recorders_at_once_record_each_event_once_and_in_order(app):
    key = create_key("write_key", "website", sources=["website"], actor="t", now=utcnow())[1]
    client = app.test_client()
    for person in range(30):
        visit(client, key, person)
    settings = runtime.settings

    def recorder(_: int) -> None:
        while record_inbound(settings=settings, now=utcnow(), limit=7):
            pass

    errors = [exc for exc in at_once(recorder, 2, database=True) if exc is not None]
    assert errors == []
    assert_recorded(range(30))
    assert Activity.select().count() == 90


def test_an_event_that_cannot_be_recorded_is_set_aside(app, caplog):
    key = create_key("write_key", "website", sources=["website"], actor="t", now=utcnow())[1]
    visit(app.test_client(), key, 1)
    broken = spoil_oldest_accepted()
    run_worker()
    [left] = InboundEvent.select()
    assert left.id == broken.id and left.failed.startswith("KeyError")
    assert any(r.levelname == "ERROR" and "set aside" in r.getMessage() for r in caplog.records)
    lead = Lead.get(Lead.email == "person1@example.com")
    assert sorted(a.type for a in lead.activities) == ["demo_video_watched", "webinar_attended"]
    run_worker()
    assert InboundEvent.get_by_id(broken.id).failed == left.failed, "not tried again"
