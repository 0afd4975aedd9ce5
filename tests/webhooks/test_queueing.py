"""How deliveries are queued: one job per endpoint's batch (an endpoint that answers slowly
holds up only its own), never a second job for a batch still waiting; and Retry now never
takes a delivery a sender holds."""

from __future__ import annotations

import pytest

from service import events, lifecycle
from service.core import db
from service.core.db import utcnow
from service.core.errors import InvalidInput
from service.core.models import WebhookDelivery
from service.core.runtime import runtime
from service.core.statuses import WebhookStatus
from service.webhooks import endpoints
from tests.conftest import run_worker
from tests.factories import new_lead
from tests.webhooks.conftest import endpoint_to


def queued() -> dict[str, list[int]]:
    """The delivery jobs waiting in the queue: job id → delivery ids."""
    jobs = runtime.queue.job_class.fetch_many(runtime.queue.get_job_ids(),
                                              connection=runtime.redis,
                                              serializer=runtime.queue.serializer)
    return {job.id: list(job.args[0]) for job in jobs if job.func_name == events.DELIVER_JOB}


def of(endpoint) -> list[int]:
    return [d.id for d in WebhookDelivery.select().where(
        WebhookDelivery.endpoint == endpoint.id).order_by(WebhookDelivery.id)]


def test_each_job_carries_one_endpoints_deliveries(app, receivers):
    first, _ = endpoint_to(receivers())
    second, _ = endpoint_to(receivers())
    lifecycle.capture_many([{"email": f"lead{n}@example.com"} for n in range(3)],
                           source="csv", actor="mia", now=utcnow())  # one commit
    assert sorted(queued().values()) == sorted([of(first), of(second)])
    assert len(of(first)) == 3
    events.enqueue_deliveries(of(first) + of(second))  # the sweep, while they still wait
    assert len(runtime.queue.get_job_ids()) == 2, "no second job for a waiting batch"
    run_worker()
    assert {d.status for d in WebhookDelivery.select()} == {WebhookStatus.DELIVERED}


def test_retry_now_leaves_a_delivery_that_is_being_sent(app, receiver):
    endpoint, _ = endpoint_to(receiver)
    new_lead("ada@example.com", at=utcnow())
    [delivery_id] = of(endpoint)
    WebhookDelivery.update(claimed_at=utcnow(), attempts=1).where(
        WebhookDelivery.id == delivery_id).execute()  # a sender holds it
    with pytest.raises(InvalidInput, match="being sent now"):
        endpoints.retry_now(delivery_id, actor="admin@example.com", now=utcnow())
    assert WebhookDelivery.get_by_id(delivery_id).attempts == 1
    WebhookDelivery.update(claimed_at=None).where(WebhookDelivery.id == delivery_id).execute()
    retried = endpoints.retry_now(delivery_id, actor="admin@example.com", now=utcnow())
    assert (retried.status, retried.attempts) == ("pending", 0)


def test_a_batch_is_queued_though_a_waiting_job_has_the_same_first_row_and_size(app,
                                                                               receiver):
    endpoint, _ = endpoint_to(receiver)
    lifecycle.capture_many([{"email": f"lead{n}@example.com"} for n in range(3)],
                           source="csv", actor="mia", now=utcnow())
    first, second, third = of(endpoint)
    runtime.queue.empty()
    events.enqueue_deliveries([first, second])
    events.enqueue_deliveries([first, third])  # the sweep's batch: third is not in the first
    assert sorted(queued().values()) == [[first, second], [first, third]]


def test_a_database_error_after_the_commit_leaves_the_rows_to_the_sweep(app, receiver, caplog):
    endpoint, _ = endpoint_to(receiver)
    new_lead("ada@example.com", at=utcnow())
    runtime.queue.empty()
    db.db.execute_sql('ALTER TABLE "webhook_delivery" RENAME TO "webhook_delivery_away"')
    try:
        assert events.enqueue_deliveries([1]) == 0
    finally:
        db.db.execute_sql('ALTER TABLE "webhook_delivery_away" RENAME TO "webhook_delivery"')
    assert "the sweep will" in caplog.text and queued() == {}
