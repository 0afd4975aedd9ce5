"""Every event type, each caused the way the product causes it (the rep's decisions, the SLA
sweep, a manager, nurture, an unsubscribe, an erasure), delivered by a real worker to a real
receiver that verifies each one with the standardwebhooks library: one delivery per change,
in each lead's sequence, with the payload the change calls for."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import timedelta

import time_machine
from standardwebhooks import Webhook

from service import events, lifecycle
from service.core.db import utcnow
from service.core.models import Lead
from service.core.runtime import runtime
from service.handoffs import escalation
from service.handoffs.actions import reassign, reject_handoff
from service.leads.gdpr import erase_lead
from service.nurture import sequences as nurture
from service.nurture.suppression import suppress
from tests.conftest import run_worker
from tests.factories import promoted, rep_in_team
from tests.webhooks.conftest import endpoint_to

BANT = {"budget": "confirmed", "authority": "decision_maker", "need": "clear",
        "timeline": "lt_3m"}


def test_every_event_type_arrives_once_per_change_verified(make_app, receiver, tmp_path):
    make_app(**{"outbound.allow_private_urls": True, "sla.calendar": "24x7",
                "sla.decision_hours": 2.0, "sla.remind_at": 0.0, "sla.escalate_at": 1.0,
                "sla.reassign_at": 0.0})
    _, secret = endpoint_to(receiver)
    riley = rep_in_team("riley@example.com", name="Riley", manager_email="sam@example.com")
    jordan = rep_in_team("jordan@example.com", name="Jordan")
    start = utcnow()
    with time_machine.travel(start, tick=False) as clock:
        ada = promoted(riley, "ada@example.com", at=start, fields={"company": "Acme"})
        clock.shift(timedelta(hours=2, minutes=1))
        escalation.sweep(settings=runtime.settings, now=utcnow())
        moved = reassign(ada.id, rep_id=jordan.id, actor="sam@example.com",
                         settings=runtime.settings, now=utcnow())
        lifecycle.accept(moved.id, bant=BANT, notes="Signed", actor=jordan.email, now=utcnow(),
                         requires=[])
        lifecycle.win(ada.lead_id, actor="sam@example.com", now=utcnow())
        bo = promoted(riley, "bo@example.com", at=utcnow())
        reject_handoff(bo.id, reason="not_ready", notes="", actor=riley.email,
                       settings=runtime.settings, now=utcnow())
        nurture.reengage([bo.lead_id], settings=runtime.settings, now=utcnow())
        suppress("bo@example.com", reason="unsubscribe", source="link", now=utcnow())
        erase_lead(bo.lead_id, actor="dpo@example.com", data_dir=tmp_path, now=utcnow())
        cy = promoted(riley, "cy@example.com", at=utcnow())
        reject_handoff(cy.id, reason="not_a_fit", notes="", actor=riley.email,
                       settings=runtime.settings, now=utcnow())
        lifecycle.register_outbound("di@example.com", fields={}, rep_id=jordan.id, bant=BANT,
                                    notes="", actor="api:crm", now=utcnow())
        run_worker()
        arrived = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]

    assert Counter(e["type"] for e in arrived) == Counter({
        "lead.created": 4, "lead.mql": 3, "handoff.escalated": 1, "handoff.reassigned": 1,
        "handoff.accepted": 1, "lead.sql": 2, "lead.customer": 1, "handoff.rejected": 2,
        "lead.nurture": 1, "lead.disqualified": 1, "lead.reengaged": 1,
        "lead.unsubscribed": 1, "lead.erased": 1})
    assert set(events.EVENT_TYPES) == {e["type"] for e in arrived}
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == len(arrived)

    by_lead = defaultdict(list)
    for event in sorted(arrived, key=lambda e: e["sequence"]):
        by_lead[event["data"]["lead"]["id"]].append(event)
    ada_events = by_lead[ada.lead_id]
    assert [e["type"] for e in ada_events] == [
        "lead.created", "lead.mql", "handoff.escalated", "handoff.reassigned",
        "handoff.accepted", "lead.sql", "lead.customer"]
    assert [e["sequence"] for e in ada_events] == list(range(1, 8))
    reassigned = ada_events[3]["data"]
    assert reassigned["lead"]["owner"]["email"] == "jordan@example.com"
    assert reassigned["handoff"]["replaces"] == ada.id
    assert ada_events[4]["data"]["handoff"]["bant"] == BANT
    assert ada_events[6]["data"]["lead"]["stage"] == "customer"
    bo_events = by_lead[bo.lead_id]
    assert [e["type"] for e in bo_events][-1] == "lead.erased"
    assert "bo@example.com" not in json.dumps(bo_events), "an erasure reaches what is unsent"
    assert by_lead[cy.lead_id][-1]["data"]["handoff"]["reason"] == "not_a_fit"
    outbound = by_lead[Lead.get(Lead.email == "di@example.com").id]
    assert [e["data"]["handoff"]["origin"] for e in outbound if e["type"] == "lead.sql"] == [
        "outbound"]
