"""An endpoint that is slow, silent or broken costs its own deliveries one failed attempt
each, bounded by outbound.timeout_seconds for the whole attempt, and never the job: the
job ends, every attempt recorded, before RQ's timeout, and the other endpoints' deliveries
in the batch go."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import time_machine

from service.core.db import utcnow
from service.core.models import WebhookDelivery, WebhookEndpoint
from service.core.runtime import runtime
from service.webhooks import endpoints
from tests.conftest import run_worker
from tests.factories import promoted
from tests.webhooks.conftest import Dripping, endpoint_to, no_job_failed, sweep_webhooks

FAST = {"outbound.allow_private_urls": True, "outbound.timeout_seconds": 1.0,
        "outbound.claim_seconds": 3}  # an RQ job timeout of 2 s


def create(url: str, **fields) -> WebhookEndpoint:
    endpoint, _ = endpoints.create({"url": url, **fields}, actor="admin@example.com",
                                   settings=runtime.settings, now=utcnow())
    return endpoint


def test_an_endpoint_dripping_its_answer_is_cut_off_at_the_deadline(make_app, rep, receiver):
    make_app(**FAST)
    drip = Dripping(b"HTTP/1.1 200 OK\r\n", lambda n: b"X-Slow: %d\r\n" % n, every=0.2)
    try:
        slow = create(drip.url)
        endpoint_to(receiver)
        with time_machine.travel(utcnow(), tick=True) as clock:
            promoted(rep, at=utcnow())  # lead.created and lead.mql, to both endpoints
            run_worker()
            assert no_job_failed(), "a send job outlived its RQ timeout"
            rows = list(WebhookDelivery.select().where(WebhookDelivery.endpoint == slow.id))
            assert len(rows) == 2
            for row in rows:
                assert row.status == "pending" and row.attempts == 1
                assert row.last_error.startswith("timed out") and row.last_status_code is None
                assert row.next_attempt_at - row.last_attempt_at == timedelta(seconds=5)
            assert len(receiver.requests) == 2, "the other endpoint's deliveries went"
            assert WebhookDelivery.select().where(
                WebhookDelivery.status == "delivered").count() == 2
            clock.shift(timedelta(seconds=6))
            sweep_webhooks()
        assert no_job_failed()
        assert {row.attempts for row in WebhookDelivery.select().where(
            WebhookDelivery.endpoint == slow.id)} == {2}, "the second attempt, on schedule"
        assert drip.gone(4), "each attempt's connection is closed"
        assert max(drip.stayed) < 1.0 + 0.8, drip.stayed
    finally:
        drip.close()


class Unanswering:
    """Listens on an address and never takes a connection (its backlog is full): a
    connection to it waits for ever, as to a host that drops every packet."""

    def __init__(self, address: str, port: int):
        self.listener = socket.create_server((address, port), backlog=0)
        self.filler = socket.create_connection((address, port), timeout=2)

    def close(self) -> None:
        self.filler.close()
        self.listener.close()


def test_addresses_that_never_answer_share_one_deadline(make_app, rep, receiver, monkeypatch):
    """crm.test resolves to two addresses that never answer, then the receiver's; dead.test
    to three that never answer. Each attempt ends within outbound.timeout_seconds."""
    make_app(**{**FAST, "outbound.timeout_seconds": 1.5, "outbound.claim_seconds": 4})
    silent = [Unanswering(f"127.0.0.{n}", receiver.port) for n in (2, 3, 4)]
    real = socket.getaddrinfo

    def dns(host, port, *args, **kwargs):
        found = {"crm.test": ["127.0.0.2", "127.0.0.3", "127.0.0.1"],
                 "dead.test": ["127.0.0.2", "127.0.0.3", "127.0.0.4"]}.get(host)
        if found is None:
            return real(host, port, *args, **kwargs)
        return [info for address in found for info in real(address, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    try:
        reached = create(f"http://crm.test:{receiver.port}/hook", event_types=["lead.mql"])
        dead = create(f"http://dead.test:{receiver.port}/hook", event_types=["lead.mql"])
        promoted(rep, at=utcnow())
        started = time.monotonic()
        run_worker()
        took = time.monotonic() - started
    finally:
        for listener in silent:
            listener.close()
    assert no_job_failed(), "a send job outlived its RQ timeout"
    [delivered] = WebhookDelivery.select().where(WebhookDelivery.endpoint == reached.id)
    assert delivered.status == "delivered", delivered.last_error
    assert receiver.requests[0].headers["host"] == f"crm.test:{receiver.port}"
    [failed] = WebhookDelivery.select().where(WebhookDelivery.endpoint == dead.id)
    assert failed.status == "pending" and failed.attempts == 1
    assert "timed out" in failed.last_error
    assert took < 2 * 1.5 + 1.5, "two attempts of at most 1.5 s each, and the worker"


def test_a_fault_in_one_delivery_is_its_failed_attempt_not_the_batchs(app, rep, receivers):
    """An endpoint row whose secret was damaged (say, edited in the database): signing its
    delivery raises. That delivery's attempt fails with a reason; the rest go."""
    broken_receiver, receiver = receivers(), receivers()
    broken = WebhookEndpoint.create(url=broken_receiver.url, secret="whsec_!!!",
                                    event_types=[])
    endpoint_to(receiver)
    promoted(rep, at=utcnow())
    run_worker()
    assert no_job_failed()
    rows = list(WebhookDelivery.select().where(WebhookDelivery.endpoint == broken.id))
    assert len(rows) == 2 and broken_receiver.requests == []
    for row in rows:
        assert row.status == "pending" and row.attempts == 1 and row.claimed_at is None
        assert row.last_error.startswith("not sent: an unexpected error")
        assert "EmptyWebhookSecretError" in row.last_error
    assert WebhookEndpoint.get_by_id(broken.id).failing_since is not None
    assert len(receiver.requests) == 2
