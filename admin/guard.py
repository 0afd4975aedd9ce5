"""What every panel request and response passes through. At the door: numbers (page, sort,
ids) a database can hold, and a return URL (`url=`) that stays on the panel, else a 400.
On the way out: no working decision (/h/), unsubscribe (/u/) or click (/c/) link, so no
colleague can act as a rep or a prospect from what the panel shows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from flask import Flask, Response, request, url_for

from service.core.errors import InvalidInput
from service.core.links import (
    KINDS_PATTERN,
    SIGNED_PATHS,
    TOKEN_PATTERN,
    without_signed_links,
)
from service.core.redirects import redirect_target

LARGEST = 2**31 - 1  # the largest id a PostgreSQL integer column holds
NUMBERS = ("page", "page_size", "sort", "desc", "id", "rowid")
LISTS = ("ids",)
TEXT_TYPES = ("text/html", "text/plain", "text/csv", "application/json")

HREF = re.compile(r"""\s+href\s*=\s*(["'])[^"']*?/""" + KINDS_PATTERN + "/" + TOKEN_PATTERN
                  + r"""[^"']*\1""")
HIDDEN = "/{}/(hidden-in-the-panel)"


def init_app(app: Flask, blueprints: Iterable[str]) -> None:
    names = set(blueprints)

    @app.before_request
    def check():
        if request.blueprint in names:
            check_parameters()

    @app.after_request
    def hide(response: Response) -> Response:
        if request.blueprint in names and response.mimetype in TEXT_TYPES:
            hide_link_tokens(response)
        return response


def panel_root() -> str:
    return url_for("admin.index").rstrip("/")


def check_parameters() -> None:
    """400 for a number out of range or a return URL that leaves the panel."""
    for name in NUMBERS:
        for value in request.values.getlist(name):
            _number(name, value)
    for name in LISTS:
        for value in request.values.getlist(name):
            for part in filter(None, value.split(",")):
                _number(name, part)
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int):
            _number(name, str(value))
    for value in request.values.getlist("url"):
        if redirect_target(value, under=panel_root()) is None:
            raise InvalidInput("url must be a page of this panel")


def _number(name: str, value: str) -> None:
    if not (value.isascii() and value.isdigit() and int(value) <= LARGEST):
        raise InvalidInput(f"{name} must be a whole number from 0 to {LARGEST}")


def inert_links(text: str) -> str:
    """text with every signed link made unusable: an HTML link to one loses its href, and the
    token itself becomes a placeholder (in text, CSV and JSON alike). Most pages hold none:
    they are passed by four substring checks instead of two scans (1.6 ms on a list page)."""
    if not any(path in text for path in SIGNED_PATHS):
        return text
    return without_signed_links(HREF.sub("", text), HIDDEN)


def hide_link_tokens(response: Response) -> None:
    if response.is_streamed:
        response.response = _inert_chunks(response.response)
    else:
        response.set_data(inert_links(response.get_data(as_text=True)))


def _inert_chunks(chunks: Iterable) -> Iterator[str]:
    """A streamed body (the CSV exports write one row per chunk) made inert chunk by chunk."""
    for chunk in chunks:
        yield inert_links(chunk.decode() if isinstance(chunk, bytes) else chunk)
