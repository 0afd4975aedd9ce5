"""HTTP adapters: parse, call one domain function, respond."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFError

from ..errors import DomainError
from . import api, decisions, email_events, forms, health, prospects, tracking, webhooks
from .responses import domain_error, error_response


def init_app(app: Flask) -> None:
    for blueprint in (forms.bp, email_events.bp, webhooks.bp, tracking.bp, decisions.bp,
                      health.bp, api.bp, prospects.bp):
        app.register_blueprint(blueprint)
    app.register_error_handler(DomainError, domain_error)
    app.register_error_handler(CSRFError, lambda exc: error_response(
        400, "csrf", "The form expired or came from elsewhere. Open the page again and retry."))
    for status, message in ((403, "You do not have access to this."),
                            (404, "There is nothing here."), (405, "Method not allowed."),
                            (413, "The request is too large.")):
        app.register_error_handler(
            status, lambda exc, s=status, m=message: error_response(s, "http_error", m))
