"""HTTP adapters: parse, call one domain function, respond."""

from __future__ import annotations

import logging

import peewee
from flask import Flask, request
from flask_wtf.csrf import CSRFError

from ..db import db
from ..errors import DomainError
from . import api, decisions, email_events, forms, health, prospects, tracking, webhooks
from .responses import domain_error, error_response, has_nul

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o")


def init_app(app: Flask) -> None:
    for blueprint in (forms.bp, email_events.bp, webhooks.bp, tracking.bp, decisions.bp,
                      health.bp, api.bp, prospects.bp):
        app.register_blueprint(blueprint)
    app.before_request(refuse_nul_characters)
    app.register_error_handler(DomainError, domain_error)
    app.register_error_handler(peewee.OperationalError, database_unavailable)
    app.register_error_handler(peewee.InterfaceError, database_unavailable)
    app.register_error_handler(CSRFError, lambda exc: error_response(
        400, "csrf", "The form expired or came from elsewhere. Open the page again and retry."))
    for status, message in ((403, "You do not have access to this."),
                            (404, "There is nothing here."), (405, "Method not allowed."),
                            (413, "The request is too large.")):
        app.register_error_handler(
            status, lambda exc, s=status, m=message: error_response(s, "http_error", m))


def refuse_nul_characters():
    """PostgreSQL text cannot hold NUL and no field of ours needs it: refuse it at the door
    with a clear 400 instead of storing it on SQLite and failing on PostgreSQL. (A gzip
    body is checked once inflated, by the tracking API that accepts it.)"""
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        found = any("\x00" in text for text in request.form.values())
    else:
        found = not request.content_encoding and has_nul(request.get_data(cache=True))
    if found or any("\x00" in text for text in request.args.values()):
        return error_response(400, "invalid", "Text may not contain NUL (\\u0000) characters.")
    return None


def database_unavailable(exc: Exception):
    """The database is locked past its timeout, or down: nothing was committed, so say so
    (503) and when to try again; senders retry and nothing is counted twice. SQLite reports
    mistakes such as a missing table as OperationalError too: those stay 500s."""
    if isinstance(db.obj, peewee.SqliteDatabase) and not any(
            word in str(exc).lower() for word in SQLITE_UNAVAILABLE):
        raise exc
    log.warning("database unavailable: %s", exc)
    response = error_response(503, "unavailable",
                              "The service is busy; nothing was stored. Try again shortly.")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
