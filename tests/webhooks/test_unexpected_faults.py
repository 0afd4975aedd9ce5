"""A fault that is not the network's while sending: the attempt is that delivery's failure
and leaves nothing behind (the connection is closed, the deadline's watch ended), so the
next delivery to the same endpoint goes; RQ's own timeout is never taken for the
endpoint's failure: it ends the job, and what the job had not reached is let go."""

from __future__ import annotations

import threading

import pytest
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from service import events
from service.core.db import utcnow
from service.core.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.core.runtime import runtime
from service.webhooks import sending
from tests.conftest import run_worker
from tests.factories import promoted
from tests.webhooks.conftest import endpoint_to


def test_a_header_http_client_refuses_fails_that_delivery_only(app, rep, receiver):
    """The first event's id was damaged in the database (a line break in it): http.client
    refuses the header half way through the request. The next delivery to the same
    endpoint, in the same job, goes."""
    endpoint_to(receiver)
    promoted(rep, at=utcnow())  # lead.created and lead.mql
    first = WebhookEvent.select().order_by(WebhookEvent.id).first()
    WebhookEvent.update(public_id="msg_damaged\nX-Injected: 1").where(
        WebhookEvent.id == first.id).execute()
    runtime.queue.empty()  # both in one job, as the sweep queues them
    assert events.enqueue_deliveries([row.id for row in WebhookDelivery.select()]) == 2
    run_worker()
    broken, sound = WebhookDelivery.select().order_by(WebhookDelivery.id)
    assert broken.status == "pending" and broken.attempts == 1
    assert broken.last_error.startswith("not sent: an unexpected error (ValueError")
    assert sound.status == "delivered", sound.last_error
    assert [r.headers["webhook-id"] for r in receiver.requests] == [sound.event.public_id]
    assert runtime.queue.failed_job_registry.count == 0


def test_rqs_timeout_ends_the_job_without_charging_the_endpoint(app, rep, receiver):
    """The job's RQ timeout fires while the first delivery waits for its answer: the
    timeout goes up to RQ, the delivery is not recorded as failed (its claim lapses and
    the takeover judges it), the endpoint is not failing, the second delivery is let go."""
    endpoint, _ = endpoint_to(receiver)
    promoted(rep, at=utcnow())
    first, second = WebhookDelivery.select().order_by(WebhookDelivery.id)
    release = receiver.hold = threading.Event()
    outbound = runtime.settings.outbound.model_copy(update={"timeout_seconds": 10.0})
    settings = runtime.settings.model_copy(update={"outbound": outbound})
    try:
        with pytest.raises(JobTimeoutException), \
                UnixSignalDeathPenalty(1, JobTimeoutException, job_id="deliver"):
            sending.deliver([first.id, second.id], settings=settings, now=utcnow())
    finally:
        release.set()
    first, second = (WebhookDelivery.get_by_id(first.id), WebhookDelivery.get_by_id(second.id))
    assert first.claimed_at is not None and first.last_error == ""
    assert first.status == "pending" and first.attempts == 1
    assert second.claimed_at is None and second.attempts == 0
    assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is None
