"""Intake's common cases, answered without Flask's request machinery: a POST to /v1/<call>
(a tracking call) or to /webhooks/<source> (a signed delivery) of a JSON body of a stated
length, with no query string and no compression. These are by far the most frequent
requests, and Flask's contexts, hooks and header handling were half of what one cost
(benchmarks/intake.py).

The lane parses, authenticates and accepts with the routes' own functions
(service.web.tracking, service.web.webhooks) and writes the headers their hooks would. It
answers only success: a request it cannot answer as the route would, or that anything is
wrong with, goes to the route, which says what is wrong. A database error the lane met is
raised by the route for the app's handlers, rather than met again after another wait for a
lock. tests/web/test_intake_lane.py holds lane and routes to the same answers and the same
stored events."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

import peewee
from flask import request
from werkzeug.datastructures import Authorization, EnvironHeaders

from service.core import db, logs
from service.core.errors import InvalidInput
from service.core.headers import security_headers
from service.core.runtime import runtime

from . import tracking, webhooks
from .responses import has_nul

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
# What a plain call's answer is: status, body, headers besides the ones every answer has.
Answer = tuple[str, bytes, tuple[tuple[str, str], ...]]
BODY_TYPES = ("application/json", "text/plain", "")  # analytics.js posts text/plain
FAILED = "leadbridge.lane_failed"  # the environ key of a database error the lane met
ANSWERED = {"content-type", "content-length", "x-request-id",
            *(name.lower() for name, _ in tracking.CORS)}


def in_front_of(route: WSGIApp, *, app_limit: int) -> WSGIApp:
    """A WSGI app answering the plain intake calls it can, and handing route the rest;
    app_limit is the most the app reads of any body."""
    def serve(environ: dict, start_response: Callable) -> Iterable[bytes]:
        plain = _plain(environ, app_limit)
        if plain is None:
            return route(environ, start_response)
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        environ["wsgi.input"] = io.BytesIO(body)  # for the route, should it answer after all
        answer = _answered(plain, body, environ)
        if answer is None:
            return route(environ, start_response)
        status, content, headers = answer
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(content))), *headers,
                                *_every_answer(environ)])
        return [content]
    return serve


def _plain(environ: dict, app_limit: int) -> Callable[[bytes, dict], Answer] | None:
    """How the lane answers this request, or None when it is not a plain intake call."""
    path, length = environ.get("PATH_INFO", ""), environ.get("CONTENT_LENGTH", "")
    if (environ.get("REQUEST_METHOD") != "POST" or environ.get("QUERY_STRING")
            or environ.get("HTTP_CONTENT_ENCODING") or environ.get("HTTP_TRANSFER_ENCODING")
            or environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
            not in BODY_TYPES or not (length.isascii() and length.isdigit())):
        return None
    if path.startswith("/v1/"):
        call = tracking.SHORT.get(path[4:], path[4:])
        limit = tracking.BODY_LIMIT
        take = (lambda body, env: _tracking_call(call, body, env)) \
            if call in tracking.CALLS else None
    elif path.startswith("/webhooks/"):
        source = path[len("/webhooks/"):]
        limit = runtime.settings.intake.max_body_kib * 1024
        take = (lambda body, env: _delivery(source, body, env)) \
            if source in runtime.settings.webhooks.sources else None
    else:
        return None
    return take if int(length) <= min(limit, app_limit) else None


def _answered(take: Callable[[bytes, dict], Answer], body: bytes, environ: dict
              ) -> Answer | None:
    """The answer once the call's events are stored; None, storing nothing, for the route."""
    if has_nul(body):
        return None
    db.connect()
    try:
        return take(body, environ)
    except InvalidInput:
        return None
    except peewee.DatabaseError as exc:
        environ[FAILED] = exc
        return None
    finally:
        db.release()


def raise_lane_failure() -> None:
    """The intake app's first hook: a database error met on the lane is raised for the
    app's handlers to answer."""
    failure = request.environ.pop(FAILED, None)
    if failure is not None:
        raise failure


def _tracking_call(call: str, body: bytes, environ: dict) -> Answer | None:
    settings = runtime.settings
    payload = tracking.json_object(body)
    auth = Authorization.from_header(environ.get("HTTP_AUTHORIZATION"))
    source = tracking.authenticate(payload, auth, settings.tracking.sources)
    if source is None:
        return None
    tracking.accept_call(call, payload, source, settings)
    return "200 OK", tracking.SUCCESS, tracking.CORS


def _delivery(source: str, body: bytes, environ: dict) -> Answer | None:
    signature = webhooks.signed_headers(EnvironHeaders(environ))
    if not webhooks.authentic(body, signature, source):
        return None
    accepted = webhooks.accept_signed(source, body, signature, runtime.settings)
    return "202 ACCEPTED", webhooks.accepted_answer(accepted), ()


def _every_answer(environ: dict) -> list[tuple[str, str]]:
    secure = environ.get("wsgi.url_scheme") in ("https", "wss")  # as werkzeug's is_secure
    return [("X-Request-ID", logs.request_id(environ.get("HTTP_X_REQUEST_ID", ""))),
            *security_headers(ANSWERED, secure=secure)]
