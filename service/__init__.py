"""Leadbridge: one app factory for the web server, the worker and the CLI."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, request
from flask_wtf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from service.core import config as config_module
from service.core import db, logs, metrics
from service.core import headers as core_headers
from service.core.runtime import runtime
from service.core.settings import Settings
from service.intake import keys

csrf = CSRFProtect()


def create_app(config: str | None = None, overrides: dict | None = None) -> Flask:
    settings = config_module.load(config, overrides)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config_module.secret_key(settings),
        MAX_CONTENT_LENGTH=1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config_module.base_url(settings).startswith("https://"),
        REMEMBER_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    logs.configure(settings.logging.level, settings.logging.format)
    init_backends(settings, app.config["SECRET_KEY"])
    every_request(app)

    # The adapters load when an app is made: workers and the CLI import this package (it
    # holds every module) without needing the HTTP routes or the panel.
    import admin
    from service import web

    web.init_app(app, csrf)  # its door reads the body before CSRF parses a form from it
    csrf.init_app(app)
    admin.init_app(app)
    web.serve_intake_apart(app, intake_app(app))
    if settings.intake.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    return app


def intake_app(app: Flask) -> Flask:
    """The intake routes machines post to at volume (tracking calls, signed webhooks) in an
    app of their own, sharing the main app's configuration: the same request id, database
    connection and security headers, without the sessions, CSRF, login and panel hooks every
    other request passes through (a third of a tracking call's time)."""
    # The adapters load when an app is made (as in create_app).
    from service import web

    intake = Flask(__name__)
    intake.config = app.config
    intake.session_interface = web.NoSessions()
    every_request(intake)
    web.init_intake(intake)
    return intake


def every_request(app: Flask) -> None:
    """A request id and the database before the views; the id and the security headers on
    every answer (one hook each way: Flask's cost per hook showed on intake)."""
    app.before_request(opening)
    app.after_request(lambda response: security_headers(logs.tag_response(response)))
    app.teardown_request(lambda exc: db.release())


def opening() -> None:
    logs.start_request()
    db.connect()


def security_headers(response):
    """Defaults for every response (service.core.headers), added in one call: a setdefault
    each was a tenth of a tracking call."""
    headers = response.headers
    headers.extend(core_headers.security_headers(set(headers.keys(lower=True)),
                                                 secure=request.is_secure))
    return response


def init_backends(settings: Settings, secret: str) -> None:
    """Bind the database and the queue for this process (counts for the Redis bound before
    go there first)."""
    metrics.flush()
    database = db.open_database(settings.database.url, config_module.data_dir(settings))
    db.bind(database)
    keys.forget()  # what another database said of its keys
    runtime.bind(settings, secret, settings.redis.url)
