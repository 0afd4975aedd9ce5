"""POST /f/<form_slug>: a website form creates or updates a lead and records form_submit."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, request

from ..db import utcnow
from ..errors import InvalidInput, NotFound
from ..intake import record_activity
from .responses import wants_json

bp = Blueprint("forms", __name__)


@bp.post("/f/<slug>")
def submit(slug: str):
    form = current_app.config["SETTINGS"]["forms"].get(slug)
    if form is None:
        raise NotFound(f"no form named {slug!r}")
    data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(data, dict):
        raise InvalidInput("send the form as urlencoded fields or a JSON object")
    honeypot = form.get("honeypot", "")
    if not (honeypot and data.get(honeypot)):
        mapping = form.get("fields", {})
        now = utcnow()
        record_activity(data.get("email"), type="form_submit", source=f"form:{slug}",
                        occurred_at=now, now=now, raw=data,
                        properties={k: v for k, v in data.items() if k != honeypot},
                        fields={lead: data.get(field) for field, lead in mapping.items()})
    if wants_json():
        return jsonify(ok=True), 201
    if form.get("redirect"):
        return redirect(form["redirect"], code=303)
    return render_template("message.html", title=form.get("thank_you_title", "Thank you"),
                           message=form.get("thank_you", "We received your message.")), 200
