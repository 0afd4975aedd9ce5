"""Readable API docs at /api/v1/docs: Swagger UI from the swagger-ui-bundle package (its
files served from here, nothing from elsewhere) over /api/v1/openapi.json. No API key."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, render_template, send_from_directory
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1/docs")
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js")
OURS = Path(__file__).resolve().parent.parent / "static"
MAX_AGE = 3600


@bp.get("")
def page():
    return render_template("api_docs.html")


@bp.get("/assets/<name>")
def asset(name: str):
    if name not in ASSETS:
        abort(404)
    return send_from_directory(swagger_ui_path, name, max_age=MAX_AGE)


@bp.get("/init.js")
def init():
    return send_from_directory(OURS, "api-docs.js", mimetype="text/javascript", max_age=MAX_AGE)
