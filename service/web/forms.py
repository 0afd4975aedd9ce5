"""POST /f/<form_slug>: a website form creates or updates a lead and records form_submit."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from flask import Blueprint, jsonify, make_response, redirect, render_template, request

from service.core import ratelimit
from service.core.addresses import normalise_email
from service.core.db import utcnow
from service.core.errors import InvalidInput, NotFound
from service.core.redirects import redirect_target
from service.core.runtime import runtime
from service.intake import counters
from service.intake.activity import ingest
from service.intake.event import Event, lead_fields

from . import bodies
from .responses import error_response, wants_json

bp = Blueprint("forms", __name__)
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


def _form(slug: str) -> dict:
    form = runtime.settings.forms.get(slug)
    if form is None:
        raise NotFound(f"no form named {slug!r}")
    return form


@bp.after_request
def cors(response):
    origin = request.headers.get("Origin")
    form = runtime.settings.forms.get((request.view_args or {}).get("slug"))
    if origin and form and origin in form.get("cors_origins", []):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Accept"
        response.headers["Access-Control-Max-Age"] = "86400"
    response.vary.add("Origin")
    return response


@bp.route("/f/<slug>", methods=["OPTIONS"])
def preflight(slug: str):
    _form(slug)
    return make_response("", 204)


@bp.post("/f/<slug>")
def submit(slug: str):
    form, now = _form(slug), utcnow()
    limit = runtime.settings.intake.form_rate_per_minute
    if not ratelimit.allow(f"form:{request.remote_addr}", limit=limit):
        counters.count(f"form:{slug}", "rate_limited", now=now)
        response = error_response(429, "rate_limited", "Too many submissions; try in a minute.")
        response.headers["Retry-After"] = "60"
        return response
    data = bodies.json_body() if request.is_json else request.form.to_dict()
    if not isinstance(data, dict):
        raise InvalidInput("send the form as urlencoded fields or a JSON object")
    honeypot = form.get("honeypot", "")
    if honeypot and data.get(honeypot):
        counters.count(f"form:{slug}", "honeypot", now=now)
    else:
        ingest([_event(form, data, honeypot, now)], source=f"form:{slug}",
               settings=runtime.settings, now=now)
    return _done(form, data)


def _event(form: dict, data: dict, honeypot: str, now) -> Event:
    mapping = form.get("fields", {})
    fields = {lead: data.get(field) for field, lead in mapping.items()}
    for field in ("email", *mapping):
        if isinstance(data.get(field), dict | list):
            raise InvalidInput(f"{field} must be text, not a JSON {type(data[field]).__name__}")
    utm = {k: v for k, v in parse_qsl(urlsplit(request.referrer or "").query) if k in UTM}
    utm.update({k: str(data[k]) for k in UTM if data.get(k)})
    fields["utm_source"] = utm.get("utm_source")
    fields["utm_campaign"] = utm.get("utm_campaign")
    properties = {k: v for k, v in data.items() if k not in (honeypot, "_redirect")}
    if utm:
        properties["utm"] = utm
    if request.referrer:
        properties["referrer"] = request.referrer[:2000]
    return Event(type="form_submit", occurred_at=now, properties=properties, raw=data,
                 email=normalise_email(data.get("email")), fields=lead_fields(fields))


def _done(form: dict, data: dict):
    if wants_json():
        return jsonify(ok=True), 201
    configured = form.get("redirect")
    allowed = [*form.get("allowed_redirects", []), *([configured] if configured else [])]
    chosen = data.get("_redirect") if data.get("_redirect") in allowed else configured
    target = redirect_target(chosen, allowed=allowed, under="/")
    if target:
        return redirect(target, code=303)
    return render_template("message.html", title=form.get("thank_you_title", "Thank you"),
                           message=form.get("thank_you", "We received your message.")), 200
