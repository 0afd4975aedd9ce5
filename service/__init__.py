"""Leadbridge: one app factory for the web server, the worker and the CLI."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, request
from flask_wtf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from service.core import config as config_module
from service.core import csp, db, logs, metrics
from service.core.runtime import runtime
from service.core.settings import Settings

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
    app.before_request(logs.start_request)
    app.before_request(db.connect)
    app.after_request(security_headers)
    app.after_request(logs.tag_response)
    app.teardown_request(lambda exc: db.release())

    # The adapters load when an app is made: workers and the CLI import this package (it
    # holds every module) without needing the HTTP routes or the panel.
    import admin
    from service import web

    web.init_app(app, csrf)  # its door reads the body before CSRF parses a form from it
    csrf.init_app(app)
    if settings.intake.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    admin.init_app(app)
    return app


def security_headers(response):
    """Defaults for every response; a view that set its own (the sandboxed previews) keeps it."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", csp.policy())
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def init_backends(settings: Settings, secret: str) -> None:
    """Bind the database and the queue for this process (counts for the Redis bound before
    go there first)."""
    metrics.flush()
    database = db.open_database(settings.database.url, config_module.data_dir(settings))
    db.bind(database)
    runtime.bind(settings, secret, settings.redis.url)
