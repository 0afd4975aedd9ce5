"""Request bodies, read one way on every route: whole and within the limit even when sent
chunked (no Content-Length), un-gzipped within the limit, and JSON through jsontext.parse
(depth, numbers, NUL and lone surrogates)."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from service.core import jsontext
from service.core.errors import InvalidInput

READ = "leadbridge.body_read"
# Routes that take more than the app's limit (inbound email), by endpoint: their limit.
LARGER: dict[str, Callable[[], int]] = {}


class TooLarge(RequestEntityTooLarge):
    """Over a route's own limit; the message names it."""

    def __init__(self, limit: int, after: str = ""):
        super().__init__(f"body over {_size(limit)}{after}")


def read(limit: int | None = None) -> bytes:
    """The raw body, refused (413) when over limit bytes, however it was sent. The first
    read, in the app's before_request hook, holds the app's limit, or the route's own when
    the route takes more (LARGER); routes with a smaller one call again with theirs."""
    current = request._get_current_object()  # noqa: SLF001 (werkzeug documents it: one lookup)
    larger = LARGER.get(current.endpoint or "")
    over = TooLarge if limit is not None or larger else lambda _: RequestEntityTooLarge()
    if limit is None:
        limit = larger() if larger else current_app.config["MAX_CONTENT_LENGTH"]
    if (current.content_length or 0) > limit:
        raise over(limit)
    if READ not in current.environ:
        # A streamed body stops at the stream's limit without an error: allow one byte more,
        # so that a body over the limit is seen to be, and refused.
        current.environ[READ] = True
        current.max_content_length = limit + 1
        if larger:  # a whole message may come as one form field
            current.max_form_memory_size = limit
    body = current.get_data(cache=True)
    if len(body) > limit:
        raise over(limit)
    return body


def inflated(body: bytes, limit: int) -> bytes:
    """A gzip body (Content-Encoding: gzip) decompressed, refused (413) over limit bytes."""
    if request.headers.get("Content-Encoding", "").lower() != "gzip":
        return body
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"body is not valid gzip: {exc}") from None
    if len(body) > limit:
        raise TooLarge(limit, " once decompressed")
    return body


def json_body(limit: int | None = None):
    """The body's JSON value, or InvalidInput (400) saying what is wrong with it."""
    return parse(read(limit))


def parse(body: bytes | str):
    try:
        return jsontext.parse(body)
    except jsontext.Unreadable as exc:
        raise InvalidInput(str(exc)) from None


def _size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
