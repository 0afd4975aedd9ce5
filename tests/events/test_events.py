"""Every change other systems hear about is one event, written with the change: its type,
the lead (fields, stage, score, owner) and the handoff where there is one, and the lead's own
sequence number. A change refused writes nothing; endpoints get a delivery only of the types
they asked for."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from service import events, lifecycle
from service.core.db import utcnow
from service.core.errors import AlreadyDecided, IllegalTransition
from service.core.models import Lead, Rep, WebhookDelivery, WebhookEvent
from service.core.runtime import runtime
from service.handoffs.actions import recycle_lead, reject_handoff
from service.leads.gdpr import erase_lead
from service.leads.scoring import Policy
from service.nurture import sequences as nurture
from service.nurture.suppression import suppress
from service.webhooks import endpoints
from tests.factories import promoted, record_activity, rep_in_team

BANT = {"budget": "confirmed", "authority": "decision_maker", "need": "clear",
        "timeline": "lt_3m"}


@pytest.fixture
def events_app(make_app):
    return make_app(**{"outbound.allow_private_urls": True})


@pytest.fixture
def riley(events_app):
    return Rep.create(email="riley@example.com", name="Riley Rep", time_zone="UTC")


def log(since: int = 0) -> list[tuple[str, int]]:
    """(type, sequence) of the events after id `since`."""
    return [(e.type, e.sequence) for e in
            WebhookEvent.select().where(WebhookEvent.id > since).order_by(WebhookEvent.id)]


def last_id() -> int:
    return WebhookEvent.select().order_by(WebhookEvent.id.desc()).first().id


def latest(event_type: str) -> dict:
    event = (WebhookEvent.select().where(WebhookEvent.type == event_type)
             .order_by(WebhookEvent.id.desc()).get())
    return events.envelope(event)


def test_promote_and_accept(riley, now):
    lead = record_activity("ada@example.com", type="form_submit", source="t", occurred_at=now,
                           now=now, policy=Policy.from_settings(runtime.settings),
                           fields={"first_name": "Ada", "company": "Acme"}).lead
    handoff = promoted(riley, lead, at=now)
    assert log() == [("lead.created", 1), ("lead.mql", 2)]
    mql = latest("lead.mql")
    assert mql["id"].startswith("msg_") and mql["timestamp"] == now.isoformat()
    lead = mql["data"]["lead"]
    assert (lead["email"], lead["stage"], lead["first_name"], lead["company"]) == (
        "ada@example.com", "mql", "Ada", "Acme")
    assert lead["owner"] == {"id": riley.id, "email": "riley@example.com", "name": "Riley Rep"}
    assert lead["score"] == 10.0, "the form submission's points"
    assert mql["data"]["handoff"]["status"] == "pending"
    before = last_id()
    lifecycle.accept(handoff.id, bant=BANT, notes="Budget signed", actor="riley@example.com",
                     now=now, requires=[])
    assert log(before) == [("handoff.accepted", 3), ("lead.sql", 4)]
    accepted = latest("handoff.accepted")["data"]
    assert accepted["handoff"]["bant"] == BANT and accepted["handoff"]["notes"] == "Budget signed"
    assert accepted["lead"]["stage"] == "sql"
    assert latest("lead.sql")["data"]["handoff"]["id"] == handoff.id


@pytest.mark.parametrize(("reason", "stage"),
                         [("not_ready", "nurture"), ("not_a_fit", "disqualified")])
def test_reject_to_nurture_or_disqualified(riley, now, reason, stage):
    handoff = promoted(riley, at=now)
    before = last_id()
    reject_handoff(handoff.id, reason=reason, notes="", actor=riley.email,
                   settings=runtime.settings, now=now)
    assert log(before) == [("handoff.rejected", 3), (f"lead.{stage}", 4)]
    rejected = latest("handoff.rejected")["data"]
    assert rejected["handoff"]["reason"] == reason and rejected["lead"]["owner"] is None


def test_a_refused_or_repeated_change_writes_no_event(riley, now):
    handoff = promoted(riley, at=now)
    lifecycle.accept(handoff.id, bant=BANT, notes="", actor="r", now=now, requires=[])
    before = log()
    with pytest.raises(AlreadyDecided):
        lifecycle.accept(handoff.id, bant=BANT, notes="", actor="r", now=now, requires=[])
    with pytest.raises(IllegalTransition):
        lifecycle.reopen(handoff.lead_id, actor="r", now=now)
    assert log() == before


def test_outbound_sql_win_and_recycle(riley, now):
    handoff = lifecycle.register_outbound("bo@example.com", fields={"company": "Bo Ltd"},
                                          rep_id=riley.id, bant=BANT, notes="met at a fair",
                                          actor="api:crm", now=now)
    assert log() == [("lead.created", 1), ("lead.sql", 2)]
    sql = latest("lead.sql")["data"]
    assert sql["handoff"]["origin"] == "outbound" and sql["lead"]["owner"]["id"] == riley.id
    lifecycle.win(handoff.lead_id, actor="sam@example.com", now=now)
    assert log()[-1] == ("lead.customer", 3)
    other = lifecycle.register_outbound("cy@example.com", fields={}, rep_id=riley.id,
                                        bant=BANT, notes="", actor="api:crm", now=now)
    recycle_lead(other.lead_id, actor="sam@example.com", reason="no budget",
                 settings=runtime.settings, now=now)
    assert log()[-1] == ("lead.nurture", 3)


def test_reassigned_and_escalated(make_app, now):
    make_app(**{"sla.calendar": "24x7", "sla.decision_hours": 2.0, "sla.escalate_at": 1.0,
                "sla.reassign_at": 0.0, "sla.remind_at": 0.0})
    riley = rep_in_team("riley@example.com", name="Riley", manager_email="sam@example.com")
    jordan = rep_in_team("jordan@example.com", name="Jordan")
    with time_machine.travel(now, tick=False) as clock:
        handoff = promoted(riley, at=now)
        clock.move_to(now + timedelta(hours=2, minutes=1))
        from service.handoffs import escalation

        escalation.sweep(settings=runtime.settings, now=now + timedelta(hours=2, minutes=1))
        escalation.sweep(settings=runtime.settings, now=now + timedelta(hours=2, minutes=2))
    assert [t for t, _ in log()].count("handoff.escalated") == 1
    assert latest("handoff.escalated")["data"]["handoff"]["id"] == handoff.id
    before = last_id()
    from service.handoffs.actions import reassign

    new = reassign(handoff.id, rep_id=jordan.id, actor="sam@example.com",
                   settings=runtime.settings, now=now + timedelta(hours=3))
    assert log(before) == [("handoff.reassigned", 4)]
    moved = latest("handoff.reassigned")["data"]
    assert moved["handoff"]["id"] == new.id and moved["handoff"]["replaces"] == handoff.id
    assert moved["lead"]["owner"]["email"] == "jordan@example.com"


def test_reengaged_unsubscribed_and_erased(make_app, now, tmp_path):
    make_app()
    riley = Rep.create(email="riley@example.com", name="Riley", time_zone="UTC")
    handoff = promoted(riley, at=now)
    reject_handoff(handoff.id, reason="not_ready", notes="", actor=riley.email,
                   settings=runtime.settings, now=now)
    lead_id = handoff.lead_id
    assert nurture.reengage([lead_id], settings=runtime.settings, now=now) == [lead_id]
    assert log()[-1] == ("lead.reengaged", 5)
    suppress("ada@example.com", reason="unsubscribe", source="link", now=now)
    suppress("ada@example.com", reason="unsubscribe", source="link", now=now)
    assert log()[-1] == ("lead.unsubscribed", 6), "once, though asked twice"
    suppress("ada@example.com", reason="hard_bounce", source="smtp", now=now)
    assert log()[-1] == ("lead.unsubscribed", 6), "a bounce is not the prospect's choice"
    erase_lead(lead_id, actor="dpo@example.com", data_dir=tmp_path, now=now)
    assert log()[-1] == ("lead.erased", 7)
    for event in WebhookEvent.select().where(WebhookEvent.lead_id == lead_id):
        text = str(event.data)
        assert "ada@example.com" not in text and "Riley" not in text, event.type
    assert latest("lead.erased")["data"] == {"lead": {"id": lead_id}}


def test_an_import_writes_one_event_per_new_lead(events_app, now):
    rows = [{"email": f"p{i}@example.com"} for i in range(300)]
    created = lifecycle.capture_many(rows, source="csv", actor="mia", now=now)
    lifecycle.capture_many(rows, source="csv", actor="mia", now=now)
    found = WebhookEvent.select().where(WebhookEvent.type == "lead.created")
    assert sorted(e.lead_id for e in found) == sorted(created.values())
    assert {e.sequence for e in found} == {1}


def test_endpoints_receive_the_types_they_asked_for(events_app, riley, now):
    settings = runtime.settings
    everything, _ = endpoints.create({"url": "http://127.0.0.1:9/all"}, actor="a",
                                     settings=settings, now=now)
    sqls, _ = endpoints.create({"url": "http://127.0.0.1:9/sql", "event_types": ["lead.sql"]},
                               actor="a", settings=settings, now=now)
    off, _ = endpoints.create({"url": "http://127.0.0.1:9/off", "active": False}, actor="a",
                              settings=settings, now=now)
    handoff = promoted(riley, at=now)
    lifecycle.accept(handoff.id, bant=BANT, notes="", actor="r", now=now, requires=[])

    def types(endpoint) -> list[str]:
        return [d.event.type for d in WebhookDelivery.select().where(
            WebhookDelivery.endpoint == endpoint.id).order_by(WebhookDelivery.id)]

    assert types(everything) == ["lead.created", "lead.mql", "handoff.accepted", "lead.sql"]
    assert types(sqls) == ["lead.sql"]
    assert types(off) == []
    assert all(d.status == "pending" for d in WebhookDelivery.select())


def test_each_lead_counts_its_own_events(riley, now):
    first = promoted(riley, "a@example.com", at=now)
    second = promoted(riley, "b@example.com", at=now)
    lifecycle.accept(second.id, bant=BANT, notes="", actor="r", now=now, requires=[])
    lifecycle.accept(first.id, bant=BANT, notes="", actor="r", now=now, requires=[])
    for lead in Lead.select():
        numbers = [e.sequence for e in WebhookEvent.select().where(
            WebhookEvent.lead_id == lead.id).order_by(WebhookEvent.id)]
        assert numbers == [1, 2, 3, 4] and lead.event_sequence == 4


def test_erasing_a_survivor_scrubs_the_events_of_the_duplicates_merged_into_it(events_app, now,
                                                                               tmp_path):
    from service.leads.merge import merge_leads
    from tests.factories import new_lead

    survivor = new_lead("ada@example.com", at=now, fields={"first_name": "Ada"})
    merged = new_lead("ada.lovelace@private.example", at=now, fields={"last_name": "Lovelace"})
    merge_leads(survivor.id, merged.id, actor="t", now=now)
    erase_lead(survivor.id, actor="t", data_dir=tmp_path, now=now)
    for event in WebhookEvent.select():
        assert "private.example" not in str(event.data) and "Lovelace" not in str(event.data)
    assert WebhookEvent.get(WebhookEvent.lead_id == merged.id).data == {
        "lead": {"id": merged.id}, "erased": True}


def test_every_event_marks_its_lead_changed(make_app, now):
    """A CRM polling /api/v1/leads?changed_since must see a new owner or an opt-out."""
    make_app(**{"sla.calendar": "24x7"})
    riley = rep_in_team("riley@example.com", name="Riley")
    jordan = rep_in_team("jordan@example.com", name="Jordan")
    from service.handoffs.actions import reassign

    with time_machine.travel(now, tick=False) as clock:
        handoff = promoted(riley, at=now)
        clock.shift(timedelta(hours=1))
        reassign(handoff.id, rep_id=jordan.id, actor="sam@example.com",
                 settings=runtime.settings, now=now + timedelta(hours=1))
        assert Lead.get_by_id(handoff.lead_id).updated_at == now + timedelta(hours=1)
        clock.shift(timedelta(days=1))
        suppress("ada@example.com", reason="unsubscribe", source="link", now=utcnow())
        assert Lead.get_by_id(handoff.lead_id).updated_at == now + timedelta(days=1, hours=1)


def test_a_late_write_is_stamped_with_the_clock_not_its_jobs_start(riley, now):
    """A long job's `now` is when it began; a poller may have read past that already."""
    started = utcnow() - timedelta(minutes=10)
    created = lifecycle.capture_many([{"email": "late@example.com"}], source="csv",
                                     actor="mia", now=started)
    lead = Lead.get_by_id(created["late@example.com"])
    assert lead.created_at == started and lead.updated_at >= started + timedelta(minutes=9)
    handoff = promoted(riley, lead, at=started)
    assert Lead.get_by_id(handoff.lead_id).updated_at >= started + timedelta(minutes=9)
