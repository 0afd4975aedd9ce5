"""Prospect-facing links in marketing mail: one-click unsubscribe (RFC 8058) and tracked
clicks. Machines post and scanners fetch these, so GET never changes anything."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request

from ..db import utcnow
from ..intake import Event, ingest
from ..links import read_click_token, read_unsubscribe_token
from ..models import EmailClick, Lead, OutboxEmail
from ..suppression import suppress
from .responses import private

bp = Blueprint("prospects", __name__)


bp.after_request(private)


def _lead(token: str) -> Lead | None:
    lead_id = read_unsubscribe_token(current_app.secret_key, token)
    return Lead.get_or_none(Lead.id == lead_id) if lead_id is not None else None


@bp.get("/u/<token>")
def confirm(token: str):
    if read_unsubscribe_token(current_app.secret_key, token) is None:
        return render_template("message.html", title="Link not usable",
                               message="This unsubscribe link is not valid."), 400
    return render_template("unsubscribe.html", lead=_lead(token), done=False)


@bp.post("/u/<token>")
def unsubscribe(token: str):
    """One click from a mail client (body List-Unsubscribe=One-Click) or the button on the
    confirmation page: suppressed at once."""
    if read_unsubscribe_token(current_app.secret_key, token) is None:
        return render_template("message.html", title="Link not usable",
                               message="This unsubscribe link is not valid."), 400
    lead = _lead(token)
    if lead is not None:
        suppress(lead.email, reason="unsubscribe", source="link", now=utcnow())
    if request.form.get("List-Unsubscribe") == "One-Click":
        return "", 200
    return render_template("unsubscribe.html", lead=lead, done=True)


@bp.get("/c/<token>")
def click(token: str):
    found = read_click_token(current_app.secret_key, token)
    if found is None:
        return render_template("message.html", title="Link not usable",
                               message="This link is not valid."), 400
    outbox_id, url = found
    row = OutboxEmail.get_or_none(OutboxEmail.id == outbox_id)
    if row is not None and row.lead_id is not None and request.method == "GET":
        now = utcnow()
        EmailClick.create(outbox=outbox_id, url=url, at=now)
        lead = Lead.get_or_none(Lead.id == row.lead_id)
        if lead is not None:
            ingest([Event(type="email_click", occurred_at=now, email=lead.email,
                          properties={"url": url, "template": row.template,
                                      "step": row.step})],
                   source="email", settings=current_app.config["SETTINGS"], now=now)
    return redirect(url, code=302)
