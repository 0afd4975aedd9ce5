"""The deadline of an attempt (outbound.timeout_seconds) holds however the endpoint
answers and however long its name takes to resolve: an answer that closes the connection
(or has no length) and drips its body, and a DNS lookup that hangs, end the attempt within
it, and the job ends before RQ's timeout."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from service.core.db import utcnow
from service.core.models import WebhookDelivery, WebhookEndpoint
from service.core.runtime import runtime
from service.webhooks import endpoints
from tests.conftest import run_worker
from tests.factories import promoted
from tests.webhooks.conftest import Dripping, no_job_failed

FAST = {"outbound.allow_private_urls": True, "outbound.timeout_seconds": 1.0,
        "outbound.claim_seconds": 3}  # an RQ job timeout of 2 s
# Headers that hand the connection's socket to the answer: the body ends when it closes.
CLOSING = {
    "connection-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n",
    "no-length": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
}


@pytest.mark.parametrize("head", CLOSING.values(), ids=CLOSING.keys())
def test_an_answer_closing_the_connection_and_dripping_its_body_is_cut_off(make_app, rep, head):
    make_app(**FAST)
    server = Dripping(head, lambda _: b"x", every=0.1)
    try:
        endpoints.create({"url": server.url, "event_types": ["lead.mql"]},
                         actor="admin@example.com", settings=runtime.settings, now=utcnow())
        promoted(rep, at=utcnow())
        run_worker()
        assert server.gone(1), "the attempt's connection is closed"
    finally:
        server.close()
    assert no_job_failed(), "the send job outlived its RQ timeout"
    [row] = WebhookDelivery.select()
    assert row.status == "delivered" and row.attempts == 1, row.last_error
    assert row.last_status_code == 200 and row.response_excerpt.startswith("x")
    assert server.stayed[0] < 1.0 + 0.5, server.stayed


def test_a_lookup_that_hangs_ends_the_attempt_at_its_deadline(make_app, rep, receiver,
                                                              monkeypatch):
    """slow.test takes 5 s to resolve (getaddrinfo cannot be interrupted): each attempt
    to it fails at its deadline of 1 s, the job ends in time, and the other endpoint's
    deliveries go."""
    make_app(**FAST)
    slow = WebhookEndpoint.create(url=f"http://slow.test:{receiver.port}/hook",
                                  secret="whsec_" + "A" * 32, event_types=["lead.mql"])
    WebhookEndpoint.create(url=receiver.url, secret="whsec_" + "B" * 32,
                           event_types=["lead.mql"])
    real, answered = socket.getaddrinfo, threading.Event()

    def hanging_dns(host, port, *args, **kwargs):
        if host == "slow.test":
            answered.wait(5)
            host = "127.0.0.1"
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging_dns)
    try:
        promoted(rep, at=utcnow())
        started = time.monotonic()
        run_worker()
        took = time.monotonic() - started
    finally:
        answered.set()
    assert no_job_failed(), "the send job outlived its RQ timeout"
    [failed] = WebhookDelivery.select().where(WebhookDelivery.endpoint == slow.id)
    assert failed.status == "pending" and failed.attempts == 1
    assert failed.last_error == "timed out resolving slow.test"
    assert len(receiver.requests) == 1
    assert took < 4.0, "the attempt ended at its 1 s deadline, not when the lookup did (5 s)"
