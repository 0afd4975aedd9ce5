"""The Content-Security-Policy of pages we render. Scripts come from our origin; an inline
script runs only with this response's nonce, and an inline event handler only when the
panel registered its exact text (by hash): Flask-Admin's templates write a few."""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import lru_cache

from flask import g

_hashes: set[str] = set()  # of the inline handlers allowed
_allowed = ""  # the same, sorted, as the policy writes them


def nonce() -> str:
    """This response's script nonce, made on first use (Flask-Admin asks while rendering)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def allow_handler(source: str) -> None:
    global _allowed
    _hashes.add("'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
                + "'")
    _allowed = " ".join(sorted(_hashes))


# Flask-Admin's menus: links to javascript:void(0) that a handler returning false stops.
allow_handler("return false;")
allow_handler("javascript:void(0)")


def policy() -> str:
    """This response's policy: with its nonce when it made one (outside a request's context,
    as on the intake lane, there is none)."""
    if g and "csp_nonce" in g:
        return _written(f"'self' 'nonce-{g.csp_nonce}'", _allowed)
    return _without_nonce(_allowed)


@lru_cache(maxsize=4)
def _without_nonce(allowed: str) -> str:
    """The policy of responses without inline scripts (most: every JSON answer), once."""
    return _written("'self'", allowed)


def _written(scripts: str, allowed: str) -> str:
    return ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            f"script-src {scripts} 'unsafe-hashes' {allowed}; object-src 'none'; "
            "frame-ancestors 'self'; base-uri 'self'; form-action 'self'")
