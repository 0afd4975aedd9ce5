"""HTTP adapters: parse, call one domain function, respond."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl

import peewee
from flask import Flask, request
from flask.sessions import SessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from service.core.db import db
from service.core.errors import DomainError
from service.core.jsontext import unstorable

from . import (
    api,
    api_docs,
    bodies,
    decisions,
    email_events,
    forms,
    health,
    inbound_mail,
    intake_lane,
    prospects,
    queue,
    tracking,
    webhooks,
)
from .responses import domain_error, error_response, has_nul, private_when_signed

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o")


# Machines post to these (forms from other sites, webhooks, SDKs, API clients, one-click
# unsubscribe): no CSRF token. People's pages (decisions, health) keep CSRF.
MACHINE_FACING = (forms.bp, email_events.bp, inbound_mail.bp, api.bp, prospects.bp)
PEOPLE_FACING = (decisions.bp, queue.bp, health.bp, api_docs.bp)
# Tracking calls and signed webhooks: served by the intake app (serve_intake_apart).
INTAKE = (tracking.bp, webhooks.bp)
INTAKE_PATHS = re.compile(r"/(?:v1|webhooks)/[^/]*\Z")  # /v1/<kind>, /webhooks/<source>


def init_app(app: Flask, csrf: CSRFProtect) -> None:
    for blueprint in MACHINE_FACING:
        csrf.exempt(blueprint)
    for blueprint in MACHINE_FACING + PEOPLE_FACING:
        app.register_blueprint(blueprint)
    app.before_request(refuse_unreadable_requests)
    app.after_request(private_when_signed)
    handle_errors(app)
    app.register_error_handler(CSRFError, lambda exc: error_response(
        400, "csrf", "The form expired or came from elsewhere. Open the page again and retry."))


def init_intake(app: Flask) -> None:
    """The intake app's routes, behind the same door and errors as every other route."""
    for blueprint in INTAKE:
        app.register_blueprint(blueprint)
    app.before_request(intake_lane.raise_lane_failure)
    app.before_request(refuse_unreadable_requests)
    handle_errors(app)


def serve_intake_apart(app: Flask, intake: Flask) -> None:
    """Requests for the intake routes go to the intake app, through the intake lane;
    every other to app."""
    main = app.wsgi_app
    lane = intake_lane.in_front_of(intake.wsgi_app, app_limit=app.config["MAX_CONTENT_LENGTH"])

    def dispatch(environ, start_response):
        target = lane if INTAKE_PATHS.match(environ.get("PATH_INFO", "")) else main
        return target(environ, start_response)

    app.wsgi_app = dispatch


class NoSessions(SessionInterface):
    """No session for machines: nothing is read from a cookie and nothing is set."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        return None


def handle_errors(app: Flask) -> None:
    app.register_error_handler(DomainError, domain_error)
    app.register_error_handler(peewee.OperationalError, database_unavailable)
    app.register_error_handler(peewee.InterfaceError, database_unavailable)
    for status, message in ((403, "You do not have access to this."),
                            (404, "There is nothing here."), (405, "Method not allowed."),
                            (413, "The request is too large.")):
        app.register_error_handler(
            status, lambda exc, s=status, m=message: error_response(s, "http_error", m))
    app.register_error_handler(
        bodies.TooLarge, lambda exc: error_response(413, "too_large", exc.description))


def refuse_unreadable_requests():
    """The door of every route, before CSRF and the views: the body is read whole within
    the app's limit, however it was sent (413 past it), and text we cannot store is refused
    with a clear 400: NUL (PostgreSQL cannot hold it), lone UTF-16 surrogates (no database
    can encode them) and form bodies that are not UTF-8. JSON is checked where it is parsed
    (bodies.parse), and a gzip body once inflated."""
    body = bodies.read()
    if request.mimetype in FORMS:
        reason = _unreadable_form(body)
    elif not request.content_encoding and has_nul(body):
        reason = "text may not contain NUL (\\u0000) characters"
    else:
        reason = None
    if not reason and request.query_string:  # most machine posts have none: not parsed
        reason = _first_unstorable(request.args)
    if reason:
        return error_response(400, "invalid", reason[0].upper() + reason[1:] + ".")
    return None


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _unreadable_form(body: bytes) -> str | None:
    if request.mimetype == FORMS[0]:
        try:
            parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            return "form fields must be UTF-8 text"
    return _first_unstorable(request.form)  # file parts are not text: not checked


def _first_unstorable(fields) -> str | None:
    texts = (text for pair in fields.items(multi=True) for text in pair)
    return next(filter(None, map(unstorable, texts)), None)


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
