"""Liveness and readiness."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, jsonify, request
from peewee import fn
from redis.exceptions import RedisError

from service.core import metrics
from service.core.db import db
from service.core.models import DirtyDay, InboundEvent, OutboxEmail
from service.core.runtime import runtime

from .responses import error_response

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks = {}
    try:
        db.execute_sql("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        if runtime.redis is None:
            raise RedisError("redis.url is not set")
        runtime.redis.ping()
        checks["redis"] = "ok"
    except RedisError as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        log.warning("not ready: %s", ", ".join(f"{k} {v}" for k, v in checks.items()))
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@bp.get("/metrics")
def prometheus():
    """Counters and gauges in Prometheus' text format, for the bearer of metrics.key."""
    key = runtime.settings.metrics.key.get_secret_value()
    if not key:
        return error_response(404, "http_error", "There is nothing here.")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), key.encode()):
        response = error_response(401, "unauthorized", "Send Authorization: Bearer <metrics.key>.")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    unsent = OutboxEmail.select().where(OutboxEmail.sent_at.is_null(),
                                        OutboxEmail.failed_at.is_null(),
                                        OutboxEmail.skipped_at.is_null()).count()
    inbound, set_aside = InboundEvent.select(fn.COUNT(InboundEvent.id),
                                             fn.COUNT(InboundEvent.failed)).tuples().get()
    gauges = {
        "leadbridge_outbox_unsent": ("Emails waiting to be sent (or retried).", unsent),
        "leadbridge_report_days_dirty": ("Days whose report rollups wait for a recount.",
                                         DirtyDay.select().count()),
        "leadbridge_intake_waiting": ("Tracking events accepted and not yet recorded.",
                                      inbound - set_aside),
        "leadbridge_intake_set_aside": ("Accepted tracking events that could not be recorded.",
                                        set_aside),
    }
    try:
        if runtime.queue is not None:
            gauges["leadbridge_queue_jobs"] = ("Jobs waiting in the RQ queue.",
                                               runtime.queue.count)
    except RedisError:
        pass
    return Response(metrics.exposition(gauges), mimetype="text/plain; version=0.0.4")
