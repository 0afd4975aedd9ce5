"""Prospect-facing links in marketing mail: one-click unsubscribe (RFC 8058) and tracked
clicks. Machines post and scanners fetch these, so GET never changes anything."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request

from service.core.db import utcnow
from service.core.linked import clicked_email, unsubscribing_lead
from service.core.links import read_click_token, read_unsubscribe_token
from service.core.models import EmailClick, Lead
from service.core.redirects import redirect_target
from service.core.runtime import runtime
from service.intake.activity import ingest
from service.intake.event import Event
from service.nurture.suppression import suppress

from .responses import gone

bp = Blueprint("prospects", __name__)  # private headers: responses.private_when_signed


def _not_valid():
    return render_template("message.html", title="Link not usable",
                           message="This unsubscribe link is not valid."), 400


def _linked_lead(token: str):
    """(the lead an unsubscribe link names, None), or (None, the page to answer instead)."""
    link = read_unsubscribe_token(current_app.secret_key, token)
    if link is None:
        return None, _not_valid()
    lead = unsubscribing_lead(link)
    return (lead, None) if lead is not None else (None, gone())


@bp.get("/u/<token>")
def confirm(token: str):
    lead, refusal = _linked_lead(token)
    if refusal is not None:
        return refusal
    return render_template("unsubscribe.html", lead=lead, done=False)


@bp.post("/u/<token>")
def unsubscribe(token: str):
    """One click from a mail client (body List-Unsubscribe=One-Click) or the button on the
    confirmation page: suppressed at once."""
    lead, refusal = _linked_lead(token)
    if refusal is not None:
        return refusal
    suppress(lead.email, reason="unsubscribe", source="link", now=utcnow())
    if request.form.get("List-Unsubscribe") == "One-Click":
        return "", 200
    return render_template("unsubscribe.html", lead=lead, done=True)


@bp.get("/c/<token>")
def click(token: str):
    link = read_click_token(current_app.secret_key, token)
    target = redirect_target(link.url if link else None, signed=True)  # our signature
    if target is None:
        return render_template("message.html", title="Link not usable",
                               message="This link is not valid."), 400
    row = clicked_email(link)
    if row is None:
        return gone()
    if request.method == "GET":
        now = utcnow()
        EmailClick.create(outbox=row.id, url=link.url, at=now)
        lead = Lead.get_by_id(row.lead_id)
        ingest([Event(type="email_click", occurred_at=now, email=lead.email,
                      properties={"url": link.url, "template": row.template,
                                  "step": row.step})],
               source="email", settings=runtime.settings, now=now)
    return redirect(target, code=302)
