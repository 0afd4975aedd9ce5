"""HTTP adapters: parse, call one domain function, respond."""

from __future__ import annotations

import logging

import peewee
from flask import Flask
from flask_wtf.csrf import CSRFError

from ..errors import DomainError
from . import api, decisions, email_events, forms, health, prospects, tracking, webhooks
from .responses import domain_error, error_response

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5


def init_app(app: Flask) -> None:
    for blueprint in (forms.bp, email_events.bp, webhooks.bp, tracking.bp, decisions.bp,
                      health.bp, api.bp, prospects.bp):
        app.register_blueprint(blueprint)
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


def database_unavailable(exc: Exception):
    """The database is locked past its timeout, or down: nothing was committed, so say so
    (503) and when to try again; senders retry and nothing is counted twice."""
    log.warning("database unavailable: %s", exc)
    response = error_response(503, "unavailable",
                              "The service is busy; nothing was stored. Try again shortly.")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
