"""Sending webhooks to a real receiver: signed per Standard Webhooks and verified with the
standardwebhooks library, retried on the schedule, endpoints disabled after days of failure,
no redirects, timeouts, excerpts, secret rotation and the Slack format."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from service import lifecycle
from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import OutboxEmail, WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.core.runtime import runtime
from service.webhooks import endpoints
from tests.conftest import run_worker
from tests.factories import promoted
from tests.webhooks.conftest import endpoint_to, sweep_webhooks

ACCEPTED_BANT = {"budget": "confirmed", "authority": "decision_maker", "need": "clear",
                 "timeline": "lt_3m"}


def promote_and_accept(rep, email: str = "ada@example.com", **fields):
    handoff = promoted(rep, email, at=utcnow(), fields={"first_name": "Ada",
                                                        "last_name": "Lovelace",
                                                        "company": "Acme", **fields})
    lifecycle.accept(handoff.id, bant=ACCEPTED_BANT, notes="", actor=rep.email, now=utcnow(),
                     requires=[])
    return handoff


def test_a_promoted_then_accepted_lead_arrives_signed_once_per_event(app, rep, receiver):
    endpoint, secret = endpoint_to(receiver)
    handoff = promote_and_accept(rep)
    run_worker()
    logged = list(WebhookEvent.select().order_by(WebhookEvent.id))
    assert [e.type for e in logged] == ["lead.created", "lead.mql", "handoff.accepted",
                                        "lead.sql"]
    assert sorted(receiver.ids()) == sorted(e.public_id for e in logged)
    for request in receiver.requests:
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["id"] == request.headers["webhook-id"]
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("Leadbridge-Webhooks/")
        assert request.path == "/hook"
    bodies = {json.loads(r.body)["type"]: json.loads(r.body) for r in receiver.requests}
    accepted = bodies["handoff.accepted"]["data"]
    assert accepted["lead"]["company"] == "Acme" and accepted["lead"]["stage"] == "sql"
    assert accepted["handoff"]["id"] == handoff.id
    assert accepted["handoff"]["bant"]["budget"] == "confirmed"
    assert [bodies[t]["sequence"] for t in ("lead.created", "lead.mql", "handoff.accepted",
                                            "lead.sql")] == [1, 2, 3, 4]
    rows = list(WebhookDelivery.select())
    assert {(r.status, r.attempts, r.last_status_code) for r in rows} == {("delivered", 1, 204)}
    assert WebhookEndpoint.get_by_id(endpoint.id).failing_since is None


def test_the_same_job_run_twice_sends_nothing_twice(app, rep, receiver):
    endpoint_to(receiver)
    promoted(rep, at=utcnow())
    jobs = runtime.queue.get_jobs()
    for job in jobs:  # the same job queued again, as a re-run or a sweep would
        runtime.queue.enqueue(job.func_name, args=job.args)
    run_worker()
    assert len(receiver.ids()) == len(set(receiver.ids())) == 2


def attempts_seen(receiver) -> int:
    return len(receiver.requests)


def test_retries_follow_the_schedule_then_the_delivery_fails(app, rep, receiver):
    receiver.status = 500
    endpoint, secret = endpoint_to(receiver, event_types=["lead.mql"])
    schedule = runtime.settings.outbound.retry_seconds
    assert schedule == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    with time_machine.travel(utcnow(), tick=True) as clock:
        promoted(rep, at=utcnow())
        run_worker()
        assert attempts_seen(receiver) == 1, "the first attempt is at once"
        for attempt, delay in enumerate(schedule[1:], start=2):
            [waiting] = WebhookDelivery.select()
            assert waiting.next_attempt_at - waiting.last_attempt_at == timedelta(seconds=delay)
            clock.move_to(waiting.next_attempt_at - timedelta(seconds=1))
            sweep_webhooks()
            assert attempts_seen(receiver) == attempt - 1, f"attempt {attempt} came early"
            clock.move_to(waiting.next_attempt_at)
            sweep_webhooks()
            assert attempts_seen(receiver) == attempt, f"attempt {attempt} did not come"
            Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
            gap = receiver.requests[-1].at - receiver.requests[-2].at
            assert timedelta(seconds=delay - 1) < gap < timedelta(seconds=delay + 2)
        [delivery] = WebhookDelivery.select()
        assert delivery.status == "failed" and delivery.attempts == 8
        assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500"
        clock.shift(timedelta(days=2))
        sweep_webhooks()
    assert attempts_seen(receiver) == 8
    assert len(set(receiver.ids())) == 1, "the webhook-id is the same on every retry"
    assert WebhookEndpoint.get_by_id(endpoint.id).active, "27 h of failures is not 5 days"


def test_five_days_of_failures_disable_the_endpoint_and_email_the_admins_once(
        app, rep, receiver, smtp):
    for email in ("ann.admin@example.com", "abe.admin@example.com"):
        create_user(email, role="admin", password="correct horse battery", now=utcnow())
    create_user("mia@example.com", role="marketer", password="correct horse battery",
                now=utcnow())
    receiver.status = 500
    endpoint, _ = endpoint_to(receiver, description="CRM sync")
    started = utcnow()
    with time_machine.travel(started, tick=True) as clock:
        for step in range(14):  # a new lead every 12 hours for 7 days, retries between
            promoted(rep, f"lead{step}@example.com", at=utcnow())
            run_worker()
            clock.shift(timedelta(hours=12))
            sweep_webhooks()
            if step == 8:
                assert WebhookEndpoint.get_by_id(endpoint.id).active, "not 5 days yet"
        seen = attempts_seen(receiver)
        clock.shift(timedelta(hours=12))
        sweep_webhooks()
    found = WebhookEndpoint.get_by_id(endpoint.id)
    assert not found.active and found.failing_since - started < timedelta(seconds=5)
    assert timedelta(days=5) <= found.disabled_at - started < timedelta(days=5, hours=13)
    assert "HTTP 500" in found.disabled_reason
    assert attempts_seen(receiver) == seen, "nothing is sent to a disabled endpoint"
    waiting = WebhookDelivery.select().where(WebhookDelivery.status == "pending").count()
    assert waiting > 0, "deliveries still waiting are kept"
    mails = [m for m in smtp.messages if "Webhook endpoint disabled" in m["Subject"]]
    assert sorted(m["To"] for m in mails) == ["abe.admin@example.com",
                                              "ann.admin@example.com"]
    text = mails[0].get_body(("plain",)).get_content()
    assert receiver.url in text and "CRM sync" in mails[0]["Subject"]
    assert "http://localhost/admin/webhooks/" in text and "HTTP 500" in text
    assert started.strftime("%Y-%m-%d %H:%M") in text
    assert OutboxEmail.select().where(
        OutboxEmail.template == "webhook_endpoint_disabled").count() == 2

    receiver.status = 200  # fixed, and turned on again: what waited goes out
    endpoints.update(endpoint.id, {"active": True}, actor="ann.admin@example.com",
                     settings=runtime.settings, now=utcnow())
    with time_machine.travel(utcnow() + timedelta(days=7, hours=13), tick=True):
        sweep_webhooks()
    assert WebhookDelivery.select().where(WebhookDelivery.status == "pending").count() == 0
    assert attempts_seen(receiver) == seen + waiting


def test_a_redirect_is_not_followed(app, rep, receivers):
    elsewhere, receiver = receivers(), receivers()
    receiver.status, receiver.location = 307, elsewhere.url
    endpoint_to(receiver, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    run_worker()
    [delivery] = WebhookDelivery.select()
    assert delivery.status == "pending" and delivery.last_status_code == 307
    assert "redirects are not followed" in delivery.last_error
    assert len(receiver.requests) == 1 and elsewhere.requests == []


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(make_app, rep, receiver):
    make_app(**{"outbound.allow_private_urls": True, "outbound.timeout_seconds": 0.5})
    receiver.delay = 2
    endpoint_to(receiver, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    run_worker()
    [delivery] = WebhookDelivery.select()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert "timed out" in delivery.last_error and delivery.last_status_code is None


def test_the_response_body_is_kept_truncated(app, rep, receiver):
    receiver.status, receiver.reply = 200, b"ok \xff" + b"x" * 5000
    endpoint_to(receiver)
    promoted(rep, at=utcnow())
    run_worker()
    rows = list(WebhookDelivery.select())
    assert len(rows) == 2 and {row.status for row in rows} == {"delivered"}
    excerpt = rows[0].response_excerpt
    assert len(excerpt.encode("utf-8", "surrogatepass")) <= 1026 and len(excerpt) == 1024
    assert excerpt.startswith("ok \ufffdxxx")


def test_during_the_grace_both_secrets_verify_then_only_the_new(app, rep, receiver):
    endpoint, old = endpoint_to(receiver, event_types=["lead.mql"])
    _, new = endpoints.rotate_secret(endpoint.id, actor="t", settings=runtime.settings,
                                     now=utcnow())
    promoted(rep, "during@example.com", at=utcnow())
    run_worker()
    during = receiver.requests[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(during.body, during.headers)
    with time_machine.travel(utcnow() + timedelta(hours=25), tick=True):
        promoted(rep, "after@example.com", at=utcnow())
        run_worker()
        after = receiver.requests[-1]
        assert after is not during
        Webhook(new).verify(after.body, after.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(after.body, after.headers)


def test_slack_format_posts_a_sentence_with_names_escaped(app, rep, receiver):
    endpoint_to(receiver, format="slack", event_types=["handoff.accepted"])
    handoff = promote_and_accept(rep, first_name="<script>&", last_name="<!channel>",
                                 company="A&B <Ltd>")
    run_worker()
    [request] = receiver.requests
    assert "webhook-signature" not in request.headers
    body = json.loads(request.body)
    assert list(body) == ["text"]
    text = body["text"]
    assert text.startswith("Riley Rep accepted *&lt;script&gt;&amp; &lt;!channel&gt;* "
                           "(A&amp;B &lt;Ltd&gt;): budget confirmed, authority decision "
                           "maker, need clear, timeline under 3 months")
    assert text.endswith(f" <http://localhost/admin/lead/details/?id={handoff.lead_id}"
                         "|Open in Leadbridge>")
    assert "<script>" not in text and "<!channel>" not in text
