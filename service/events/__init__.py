"""Events: each change other systems hear about is a row of the event log, written in the
transaction of the change (with a delivery row for each endpoint that wants it), so an event
exists exactly when its change does. service.webhooks sends the deliveries; /api/v1/events
pages through the log. Callers: `events.emit("handoff.accepted", lead_id, …)`; a lead's
stage change is one call, `events.stage_changed(…)`."""

from service.events.log import (
    DELIVER_JOB,
    EVENT_TYPES,
    STAGE_EVENTS,
    TEST_EVENT,
    collect_delivery,
    created,
    emit,
    enqueue_deliveries,
    envelope,
    erase,
    fan_out,
    new_event_id,
    stage_changed,
)

__all__ = ["DELIVER_JOB", "EVENT_TYPES", "STAGE_EVENTS", "TEST_EVENT", "collect_delivery",
           "created", "emit", "enqueue_deliveries", "envelope", "erase", "fan_out",
           "new_event_id", "stage_changed"]
