"""What operators see: Prometheus counters behind a key, request and job ids on every log
line, readiness naming each dependency."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from service.core import logs, metrics
from service.core.db import utcnow
from service.core.models import Lead, Rep
from service.core.runtime import runtime
from service.intake.keys import create_key
from tests.conftest import free_port, run_worker
from tests.factories import promoted
from tests.mail.test_outbox import promote_many
from tests.web.test_tracking import basic

KEY = "metrics-key-0123456789"


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


def metric(text: str, line: str) -> float:
    values = [row.rsplit(" ", 1)[1] for row in text.splitlines() if row.startswith(line + " ")]
    assert len(values) == 1, f"{line} not in\n{text}"
    return float(values[0])


def test_metrics_need_their_key(make_app):
    assert make_app().test_client().get("/metrics").status_code == 404
    client = make_app(**{"metrics.key": KEY}).test_client()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    right = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert right.status_code == 200 and right.mimetype == "text/plain"


def test_counters_for_intake_sends_failures_and_sweeps(make_app, smtp):
    app = make_app(**{"metrics.key": KEY})
    key = create_key("write_key", "website", sources=["website"], actor="t", now=utcnow())[1]
    client = app.test_client()
    for i in (1, 2, 3, 3):
        client.post("/v1/track", headers=basic(key), json={
            "userId": f"u-{i}", "event": "Trial Started", "messageId": f"m-{i}",
            "context": {"traits": {"email": f"lead{i}@example.com"}}})
    run_worker()  # records the accepted events
    smtp.refuse["gone.rep@example.com"] = "550 5.1.1 No such user"
    for email, rep in (("lead1@example.com", "jordan.rep@example.com"),
                       ("lead2@example.com", "gone.rep@example.com")):
        promoted(Rep.create(email=rep, name=rep), Lead.get(Lead.email == email),
                 at=utcnow())
    run_worker()
    runtime.queue.enqueue("workers.jobs.sweep_outbox")
    run_worker()
    text = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert metric(text, 'leadbridge_intake_accepted_total{source="tracking:website"}') == 4
    assert metric(text, 'leadbridge_intake_duplicates_total{source="tracking:website"}') == 1
    assert metric(text, 'leadbridge_intake_events_total{source="tracking:website"}') == 3
    assert metric(text, "leadbridge_intake_waiting") == 0
    assert metric(text, 'leadbridge_emails_sent_total{template="rep_handoff"}') == 1
    assert metric(text, 'leadbridge_emails_failed_total{template="rep_handoff"}') == 1
    assert metric(text, 'leadbridge_sweep_runs_total{sweep="outbox"}') == 1
    assert metric(text, 'leadbridge_sweep_seconds_total{sweep="outbox"}') > 0
    assert metric(text, "leadbridge_outbox_unsent") == 0
    assert "# TYPE leadbridge_emails_sent_total counter" in text
    assert "lead1@example.com" not in text, "no personal data in metrics"


def test_a_count_reaches_redis_within_a_second_without_more_traffic(app):
    metrics.add("leadbridge_intake_events_total", 2, source="quiet")
    field = 'leadbridge_intake_events_total{source="quiet"}'
    assert runtime.redis.hget(metrics.HASH, field) is None, "tallied in the process first"
    time.sleep(metrics.FLUSH_SECONDS + 0.5)
    assert float(runtime.redis.hget(metrics.HASH, field)) == 2


def test_a_send_that_breaks_in_the_background_loses_that_tally_and_nothing_else(app,
                                                                                monkeypatch):
    """The client library can fail with any error when its connections are closed under it
    (a new app binding a new client); the timer thread must not die with it."""
    import threading

    from redis.client import Pipeline

    crashed, real_execute, breaks = [], Pipeline.execute, iter([True])
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))

    def execute(pipe, *args, **kwargs):
        if next(breaks, False):
            raise AttributeError("'NoneType' object has no attribute 'readline'")
        return real_execute(pipe, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", execute)
    metrics.add("leadbridge_intake_events_total", 1, source="lost")
    time.sleep(metrics.FLUSH_SECONDS + 0.5)
    metrics.add("leadbridge_intake_events_total", 1, source="kept")
    time.sleep(metrics.FLUSH_SECONDS + 0.5)
    assert crashed == []
    kept = metrics._field("leadbridge_intake_events_total", {"source": "kept"})
    assert float(runtime.redis.hget(metrics.HASH, kept)) == 1


def test_request_and_job_ids_on_log_lines(make_app, smtp, json_log):
    app = make_app(**{"redis.url": f"redis://127.0.0.1:{free_port()}/0"})
    response = app.test_client().get("/readyz", headers={"X-Request-ID": "trace-123"})
    assert response.status_code == 503 and response.headers["X-Request-ID"] == "trace-123"
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["redis"].startswith("error")
    [line] = [e for e in json_log() if e["logger"] == "service.web.health"]
    assert line["request_id"] == "trace-123" and line["level"] == "WARNING"
    generated = app.test_client().get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32, "a request without an id gets one"


def test_a_job_log_line_names_its_job(make_app, smtp, json_log):
    app = make_app(**{"mail.smtp_port": free_port()})  # nobody listens: a transient failure
    [row] = promote_many(app, 1)
    run_worker()
    retry = [e for e in json_log() if e["logger"] == "service.core.outbox"]
    assert retry and retry[0]["job_id"] == f"send-email-{row.id}"
    assert "lead0@example.com" not in json.dumps(retry), "no personal data in job logs"


def test_json_format_is_configured(make_app):
    make_app(**{"logging.format": "json"})
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "leadbridge", False)]
    assert len(handlers) == 1 and isinstance(handlers[0].formatter, logs.JsonFormatter)
    make_app()
    assert not isinstance(handlers[0].formatter, logs.JsonFormatter)
