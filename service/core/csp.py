"""The Content-Security-Policy of pages we render. Scripts come from our origin; an inline
script runs only with this response's nonce, and an inline event handler only when the
panel registered its exact text (by hash): Flask-Admin's templates write a few."""

from __future__ import annotations

import base64
import hashlib
import secrets

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
    scripts = ["'self'"]
    if "csp_nonce" in g:
        scripts.append(f"'nonce-{g.csp_nonce}'")
    scripts += ["'unsafe-hashes'", _allowed]
    return ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            f"script-src {' '.join(scripts)}; object-src 'none'; frame-ancestors 'self'; "
            "base-uri 'self'; form-action 'self'")
