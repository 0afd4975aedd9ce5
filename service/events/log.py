"""The event log and its fan-out to endpoints, inside the caller's transaction."""

from __future__ import annotations

import logging
import secrets
import zlib
from datetime import datetime

from peewee import JOIN, DatabaseError
from redis.exceptions import RedisError

from service.core.db import change_stamp, collect
from service.core.fastsql import insert_returning
from service.core.models import (
    Definition,
    Handoff,
    Lead,
    LeadMerge,
    Rep,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from service.core.runtime import runtime
from service.core.scores import Policy
from service.core.statuses import WebhookStatus
from service.events.payloads import handoff_json, lead_json, owners

log = logging.getLogger(__name__)
DELIVER_JOB = "workers.jobs.deliver_webhooks"
BATCH = 50  # deliveries per job
TEST_EVENT = "webhook.test"
STAGE_EVENTS = {"mql": "lead.mql", "sql": "lead.sql", "customer": "lead.customer",
                "nurture": "lead.nurture", "disqualified": "lead.disqualified"}
EVENT_TYPES = ("lead.created", "lead.mql", "handoff.accepted", "handoff.rejected",
               "handoff.reassigned", "handoff.escalated", "lead.sql", "lead.customer",
               "lead.nurture", "lead.disqualified", "lead.reengaged", "lead.unsubscribed",
               "lead.erased")


def new_event_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def stage_changed(lead_id: int, from_stage: str | None, to_stage: str, *, now: datetime,
                  handoff_id: int | None = None) -> None:
    """A stage change's events: lead.created when it is new, then its stage's event."""
    if from_stage is None:
        emit("lead.created", lead_id, now=now)
    if to_stage in STAGE_EVENTS:
        emit(STAGE_EVENTS[to_stage], lead_id, now=now, handoff_id=handoff_id)


def emit(event_type: str, lead_id: int, *, now: datetime,
         handoff_id: int | None = None) -> None:
    """One event about a lead (and a handoff), with the lead's next sequence number."""
    lead = _next_sequence([lead_id], now).get(lead_id)
    if lead is None:
        return
    data = {"lead": lead_json(lead, policy=Policy.from_settings(runtime.settings), now=now,
                              owner=owners([lead_id]).get(lead_id))}
    if handoff_id is not None:
        data["handoff"] = handoff_json(Handoff.select(Handoff, Rep, Definition).join(Rep)
                                       .switch(Handoff).join(Definition, JOIN.LEFT_OUTER)
                                       .where(Handoff.id == handoff_id).get())
    _write(event_type, [{"lead_id": lead_id, "handoff_id": handoff_id, "data": data,
                         "sequence": lead.event_sequence}], now)


def created(leads: list, *, now: datetime) -> None:
    """lead.created for leads just inserted (say, an import's) with event_sequence 1, built
    from the rows as written (objects with a Lead's attributes): no lead is read back."""
    policy = Policy.from_settings(runtime.settings)
    _write("lead.created", [
        {"lead_id": lead.id, "handoff_id": None, "sequence": 1,
         "data": {"lead": lead_json(lead, policy=policy, now=now)}} for lead in leads], now)


def erase(lead_id: int, *, now: datetime) -> None:
    """Before a lead is erased: its earlier events, and those of the duplicates merged into
    it, keep their lead's id only (deliveries not yet made send that), and lead.erased says
    so."""
    lead = _next_sequence([lead_id], now).get(lead_id)
    if lead is None:
        return
    merged = [row.merged_id for row in LeadMerge.select(LeadMerge.merged_id).where(
        LeadMerge.survivor == lead_id)]
    for erased_id in [lead_id, *merged]:
        WebhookEvent.update(data={"lead": {"id": erased_id}, "erased": True}).where(
            WebhookEvent.lead_id == erased_id).execute()
    ids_only = {"lead": {"id": lead_id}}
    _write("lead.erased", [{"lead_id": lead_id, "handoff_id": None, "data": ids_only,
                            "sequence": lead.event_sequence}], now)


def _next_sequence(lead_ids: list[int], now: datetime) -> dict[int, Lead]:
    """Count one more event for each lead (the row lock orders concurrent writers), which
    also marks it changed for /api/v1/leads?changed_since (an owner or an opt-out is a
    change); the leads as they are now."""
    Lead.update(event_sequence=Lead.event_sequence + 1, updated_at=change_stamp(now)).where(
        Lead.id.in_(lead_ids)).execute()
    return {lead.id: lead for lead in Lead.select().where(Lead.id.in_(lead_ids))}


def _write(event_type: str, rows: list[dict], now: datetime) -> None:
    event_ids = insert_returning(WebhookEvent, [
        {"public_id": new_event_id(), "type": event_type, "occurred_at": now, **row}
        for row in rows], "id")
    fan_out(event_type, event_ids, now=now)


def subscribed(event_type: str) -> list[int]:
    """The active endpoints that want this type (an empty list of types wants all)."""
    return [endpoint.id for endpoint in WebhookEndpoint.select(
        WebhookEndpoint.id, WebhookEndpoint.event_types).where(WebhookEndpoint.active)
        if not endpoint.event_types or event_type in endpoint.event_types]


def fan_out(event_type: str, event_ids: list[int], *, now: datetime,
            endpoint_ids: list[int] | None = None) -> list[int]:
    """A pending delivery of each event to each endpoint (default: those subscribed), sent
    after the commit."""
    targets = subscribed(event_type) if endpoint_ids is None else endpoint_ids
    if not targets or not event_ids:
        return []
    delivery_ids = insert_returning(WebhookDelivery, [
        {"event": event_id, "endpoint": endpoint_id, "status": WebhookStatus.PENDING,
         "attempts": 0, "next_attempt_at": now, "created_at": now, "last_error": "",
         "response_excerpt": ""}
        for event_id in event_ids for endpoint_id in targets], "id")
    for delivery_id in delivery_ids:
        collect_delivery(delivery_id)
    return delivery_ids


def collect_delivery(delivery_id: int) -> None:
    """Queue the delivery's send job after the commit."""
    collect("webhooks", delivery_id, enqueue_deliveries)


def enqueue_deliveries(delivery_ids: list[int]) -> int:
    """Queue send jobs of up to BATCH deliveries of one endpoint each (an endpoint that
    answers slowly holds up only its own), with ids made from the rows; a batch whose job is
    still waiting in the queue is not queued again. With Redis down the rows wait for the
    webhooks sweep."""
    queue = runtime.queue
    if not delivery_ids or queue is None:
        return 0
    try:
        batches = [ids[i:i + BATCH] for ids in by_endpoint(delivery_ids).values()
                   for i in range(0, len(ids), BATCH)]
    except DatabaseError as exc:  # after the commit: the change stands, the sweep sends
        log.warning("could not queue %d webhook delivery(ies), the sweep will: %s",
                    len(delivery_ids), exc)
        return 0
    try:
        waiting = _waiting(queue, [_job_id(ids) for ids in batches])
        queue.enqueue_many([
            queue.prepare_data(DELIVER_JOB, args=(ids,), result_ttl=3600,
                               failure_ttl=7 * 86400, job_id=_job_id(ids),
                               timeout=runtime.settings.outbound.claim_seconds * 2 // 3)
            for ids in batches if _job_id(ids) not in waiting])
    except RedisError as exc:
        log.warning("could not queue %d webhook delivery(ies), the sweep will: %s",
                    len(delivery_ids), exc)
        return 0
    return len(delivery_ids)


def by_endpoint(delivery_ids: list[int], chunk: int = 5000) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for start in range(0, len(delivery_ids), chunk):
        for delivery_id, endpoint_id in WebhookDelivery.select(
                WebhookDelivery.id, WebhookDelivery.endpoint).where(
                WebhookDelivery.id.in_(delivery_ids[start:start + chunk])).tuples():
            found.setdefault(endpoint_id, []).append(delivery_id)
    return {endpoint: sorted(ids) for endpoint, ids in found.items()}


def _job_id(ids: list[int]) -> str:
    """Made from the rows: the same batch again is the same job."""
    if len(ids) == 1:
        return f"deliver-{ids[0]}-1"
    return f"deliver-{ids[0]}-{len(ids)}-{zlib.crc32(repr(ids).encode()):08x}"


def _waiting(queue, job_ids: list[str]) -> set[str]:
    """Those of the jobs that are in the queue, not yet started."""
    jobs = queue.job_class.fetch_many(job_ids, connection=queue.connection,
                                      serializer=queue.serializer)
    return {job.id for job in jobs if job is not None and job.get_status(refresh=False) == "queued"}


def envelope(event: WebhookEvent) -> dict:
    """The JSON body of a standard delivery, and an item of /api/v1/events."""
    return {"id": event.public_id, "type": event.type,
            "timestamp": event.occurred_at.isoformat(), "sequence": event.sequence,
            "data": event.data}
