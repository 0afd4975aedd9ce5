"""Polling: /api/v1/events and /api/v1/leads?changed_since=… page by opaque cursors while
other threads keep writing (real concurrent transactions on PostgreSQL when
LEADBRIDGE_DATABASE__URL is set; SQLite runs one writer at a time)."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from urllib.parse import quote

import pytest

from service import events
from service.core import db
from service.core.db import transaction, utcnow
from service.core.models import Lead, WebhookEvent
from service.intake.importer import import_csv
from service.intake.keys import create_key
from service.web import cursors
from service.webhooks import endpoints
from tests.conftest import DATABASE_URL
from tests.factories import new_lead, record_activity

SETTLE = 0.5  # web.lead_poll_settle_seconds in these tests


@pytest.fixture
def app(make_app):
    return make_app(**{"outbound.allow_private_urls": True,
                       "web.lead_poll_settle_seconds": SETTLE})


@pytest.fixture
def api(app):
    key = create_key("api", "crm", sources=["crm"], actor="t", now=utcnow(),
                     owner="mia@example.com")[1]
    client = app.test_client()

    def get(path):
        response = client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        return response.json

    get.client, get.key = client, key
    return get


class Writers:
    """`threads` threads each calling act(thread, n) in its own transaction (held open a
    random moment, so commits overtake each other) until stopped."""

    def __init__(self, act, threads: int, pause: float = 0.005):
        self.act, self.pause, self.stopping, self.errors = act, pause, threading.Event(), []
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def run(self, thread: int) -> None:
        db.connect()
        try:
            n = 0
            while not self.stopping.is_set():
                with transaction():
                    self.act(thread, n)
                    time.sleep(random.uniform(0, 0.01))
                n += 1
                time.sleep(self.pause)  # else SQLite's busy wait starves the other writers
        except Exception as exc:  # noqa: BLE001 - the test asserts there was none
            self.errors.append(exc)
        finally:
            db.db.close()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        assert self.errors == []


def api_settings():
    from service.core.runtime import runtime

    return runtime.settings


def poll_events(api, cursor: str | None, limit: int) -> tuple[list[dict], str]:
    page = api(f"/events?limit={limit}" + (f"&after={cursor}" if cursor else ""))
    return page["events"], page["next_cursor"]


def test_cursor_polling_returns_every_event_exactly_once_while_events_arrive(api, now):
    endpoint, _ = endpoints.create({"url": "https://127.0.0.1:9/x", "event_types": [
        "lead.unsubscribed"]}, actor="t", settings=api_settings(), now=now)

    def act(thread: int, n: int) -> None:
        new_lead(f"w{thread}-{n}@example.com", at=utcnow(), activity=None)
        if n % 5 == 0:  # webhook.test events are never in the log
            endpoints.send_test_event(endpoint.id, actor="t", now=utcnow())

    writers = Writers(act, threads=3 if DATABASE_URL else 2)
    seen, cursor, pages = [], None, 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        page, cursor = poll_events(api, cursor, random.randint(1, 7))
        seen += page
        pages += 1
    writers.stop()
    while True:
        page, cursor = poll_events(api, cursor, 7)
        if not page:
            break
        seen += page
    expected = [e.public_id for e in WebhookEvent.select().where(
        WebhookEvent.type != "webhook.test").order_by(WebhookEvent.id)]
    assert len(expected) > 40 and pages > 20
    ids = [event["id"] for event in seen]
    assert len(ids) == len(set(ids)), "no event twice"
    assert ids == expected, "every event once, in order"
    assert {event["type"] for event in seen} == {"lead.created"}
    assert seen[0] == {"id": expected[0], "type": "lead.created", "sequence": 1,
                       "timestamp": seen[0]["timestamp"], "data": seen[0]["data"]}
    assert seen[0]["data"]["lead"]["email"].startswith("w")


@pytest.mark.skipif(not DATABASE_URL, reason="SQLite commits one writer at a time, in order")
def test_an_event_committed_after_a_later_one_is_not_skipped(api, now):
    """A transaction draws event id N and commits after another's N+1: a poll meanwhile
    waits for it (or, past the wait, hands out nothing), never N+1 alone."""
    written, release = threading.Event(), threading.Event()
    slow_lead = new_lead("slow@example.com", at=now, activity=None)
    fast_lead = new_lead("fast@example.com", at=now, activity=None)
    WebhookEvent.delete().execute()  # just the two events below in the log

    def slow_writer() -> None:
        db.connect()
        try:
            with transaction():
                events.emit("lead.reengaged", slow_lead.id, now=utcnow())
                written.set()
                release.wait(10)
        finally:
            db.db.close()

    slow = threading.Thread(target=slow_writer)
    slow.start()
    assert written.wait(10)
    with transaction():
        events.emit("lead.reengaged", fast_lead.id, now=utcnow())
    visible = [e.data["lead"]["email"] for e in WebhookEvent.select().order_by(WebhookEvent.id)]
    assert visible == ["fast@example.com"], "the slower transaction holds the lower id"

    started = time.monotonic()
    found, cursor = poll_events(api, None, 10)
    assert (found, cursor) == ([], cursors.event_cursor(0)), "past the wait: nothing yet"
    assert time.monotonic() - started >= cursors.WAIT_SECONDS

    threading.Timer(0.3, release.set).start()
    found, cursor = poll_events(api, None, 10)
    slow.join()
    assert [e["data"]["lead"]["email"] for e in found] == ["slow@example.com",
                                                           "fast@example.com"]
    assert poll_events(api, cursor, 10)[0] == []


def test_event_log_arguments(api, now):
    for email in ("a@example.com", "b@example.com"):
        new_lead(email, at=now)
    everything = api("/events")
    assert [e["type"] for e in everything["events"]] == ["lead.created"] * 2
    assert api(f"/events?after={everything['next_cursor']}")["events"] == []
    assert api("/events?type=lead.mql")["events"] == []
    assert len(api("/events?type=lead.created&limit=1")["events"]) == 1
    for bad in ("/events?after=nope", "/events?after=" + cursors.lead_cursor(now, 1),
                "/events?type=lead.bogus", "/events?limit=0", "/events?limit=x"):
        refused = api.client.get(f"/api/v1{bad}", headers={"Authorization": f"Bearer {api.key}"})
        assert refused.status_code == 400, bad
        assert refused.json["error"]["message"]


def test_lead_cursor_paging_sees_every_change_while_leads_keep_changing(api, now):
    """Each lead changed at or after changed_since comes at least once, and the last time it
    comes it is in its newest state (a lead changed again after it came may come again)."""
    since = utcnow()
    old = new_lead("old@example.com", at=since - timedelta(days=1))
    Lead.update(updated_at=since - timedelta(days=1)).where(Lead.id == old.id).execute()

    def act(thread: int, n: int) -> None:
        email = f"c{thread}-{n % 12}@example.com"
        record_activity(email, type="page_view", source="t", occurred_at=utcnow(),
                        now=utcnow(), fields={"company": f"{thread}-{n}"})

    writers = Writers(act, threads=2, pause=0.06)  # each lead changes every ~0.8 s
    seen: dict[str, list[dict]] = {}
    cursor, pages = None, 0

    def poll(limit: int) -> int:
        nonlocal cursor
        query = f"/leads?changed_since={since.isoformat().replace('+00:00', 'Z')}"
        page = api(f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        for lead in page["leads"]:
            seen.setdefault(lead["email"], []).append(lead)
        cursor = page["next_cursor"]
        return len(page["leads"])

    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        poll(random.randint(1, 5))
        pages += 1
        time.sleep(0.02)
    writers.stop()
    seen_while_writing = sum(len(versions) for versions in seen.values())
    time.sleep(SETTLE + 0.1)
    while poll(5):
        pass
    changed = {lead.email: lead for lead in Lead.select().where(Lead.updated_at >= since)}
    assert len(changed) == 24 and pages > 20, sorted(changed)
    assert set(seen) == set(changed), "every changed lead, and only those"
    for email, versions in seen.items():
        assert versions[-1]["company"] == changed[email].company, "newest state last"
    assert seen_while_writing > 24, "pages came while the leads kept changing"
    assert any(len(versions) > 1 for versions in seen.values()), "changed again: came again"
    assert "old@example.com" not in seen


def iso(moment) -> str:
    return quote(moment.isoformat())


def test_lead_paging_arguments(api, rep, now):
    lead = new_lead("ada@example.com", at=now)
    new_lead("bob@example.com", at=now)
    lead.update(stage="sql").where(Lead.id == lead.id).execute()
    time.sleep(SETTLE + 0.1)  # written now (whatever `now` the caller gave), and settled
    old_style = api("/leads?stage=sql")
    assert [x["email"] for x in old_style["leads"]] == ["ada@example.com"]
    assert "next_cursor" not in old_style
    first = api(f"/leads?changed_since={iso(now - timedelta(1))}&limit=1")
    assert [x["email"] for x in first["leads"]] == ["ada@example.com"]
    second = api(f"/leads?cursor={first['next_cursor']}&limit=1")
    assert [x["email"] for x in second["leads"]] == ["bob@example.com"]
    assert api(f"/leads?cursor={second['next_cursor']}")["leads"] == []
    assert api(f"/leads?stage=sql&changed_since={iso(now)}")["leads"][0]["id"] == lead.id
    assert api(f"/leads?changed_since={iso(utcnow() + timedelta(1))}")["leads"] == []
    for bad in ("/leads?stage=hot", "/leads?changed_since=yesterday", "/leads?cursor=abc",
                "/leads?cursor=" + cursors.event_cursor(3),
                "/leads?changed_since=2026-01-01&limit=0"):
        refused = api.client.get(f"/api/v1{bad}", headers={"Authorization": f"Bearer {api.key}"})
        assert refused.status_code == 400, bad


def test_a_lead_changed_by_a_later_import_chunk_is_still_handed_out(api, tmp_path):
    """Every chunk of an import is its own transaction: a known lead it changes is stamped
    with the chunk's time, so a poller that read past the earlier chunks still sees it."""
    start = utcnow()
    old = new_lead("old@example.com", at=start - timedelta(hours=1), activity=None)
    rows = ["email,company"] + [f"new{i}@example.com,N{i}" for i in range(1000)] + \
        ["old@example.com,Acme"] + [f"late{i}@example.com,L" for i in range(5)]
    # the second chunk fills the old lead's blank company and captures five more
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(rows) + "\n")
    state = {"cursor": None, "seen": set()}
    since = quote((start - timedelta(minutes=1)).isoformat())

    def poll_all(_chunk=None):
        time.sleep(SETTLE * 2)
        while True:
            query = f"cursor={state['cursor']}" if state["cursor"] else f"changed_since={since}"
            page = api(f"/leads?{query}&limit=100")
            state["seen"] |= {lead["email"] for lead in page["leads"]}
            state["cursor"] = page["next_cursor"] or state["cursor"]
            if not page["leads"]:
                return

    import_csv(path, source="csv", now=start, progress=poll_all)
    poll_all()
    assert Lead.get_by_id(old.id).company == "Acme"
    assert len(state["seen"]) == 1006 and "old@example.com" in state["seen"]
    assert {f"late{i}@example.com" for i in range(5)} <= state["seen"]
