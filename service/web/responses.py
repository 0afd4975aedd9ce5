"""Responses shared by the adapters: JSON for API clients, a page for people."""

from __future__ import annotations

from flask import jsonify, make_response, render_template, request

from service.core.errors import DomainError
from service.core.links import SIGNED_PATHS, BadLink


def wants_json() -> bool:
    if request.is_json or request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str):
    if wants_json():
        return make_response(jsonify(error={"code": code, "message": message}), status)
    return make_response(render_template("message.html", title="Something is not right",
                                         message=message), status)


def domain_error(exc: DomainError):
    return error_response(exc.status, exc.code, exc.message)


def private(response):
    """For pages reached from links in one person's email: never indexed, cached or leaked
    through a Referer."""
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def private_when_signed(response):
    """Every answer under a signed link's path is private, whatever its status: a 404 or a
    405 there never reaches a view (nor its blueprint's hooks) but its URL holds a token."""
    if request.path.startswith(SIGNED_PATHS):
        return private(response)
    return response


def has_nul(body: bytes) -> bool:
    """A NUL character, raw or as a JSON escape."""
    return b"\x00" in body or b"\\u0000" in body


def unusable(exc: BadLink):
    """A signed link that is garbled (400) or expired (410), saying which."""
    return render_template("message.html", title="Link not usable", message=str(exc)), \
        exc.status


def gone():
    """A signed link whose record was erased, or whose id now belongs to another record."""
    return render_template("message.html", title="Link no longer usable",
                           message="This link belongs to a record that no longer exists."), 410


def withdrawn():
    """A rep's link (queue or decision) revoked by a manager, or the rep made inactive."""
    return render_template(
        "message.html", title="Link withdrawn",
        message="This link was withdrawn. The newest email from Leadbridge has one that "
                "works."), 410
