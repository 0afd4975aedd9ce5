"""The rep's queue: GET /r/<token> lists the rep's pending handoffs, each with its Accept and
Reject links (service/web/decisions.py). It changes nothing; the link expires
(handoff.queue_link_ttl_hours) and is revoked, with the Accept/Reject links, when a manager
revokes the rep's links, changes the rep's email address or deactivates the rep."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from service.core.db import utcnow
from service.core.links import BadLink, read_queue_token
from service.core.runtime import runtime
from service.handoffs import queue
from service.handoffs.morning import rep_zone
from service.mail.emails import queue_items

from .responses import unusable, withdrawn

bp = Blueprint("queue", __name__)  # private headers: responses.private_when_signed


@bp.get("/r/<token>")
def rep_queue(token: str):
    settings = runtime.settings
    try:
        link = read_queue_token(current_app.secret_key, token,
                                max_age_hours=settings.handoff.queue_link_ttl_hours)
    except BadLink as exc:
        return unusable(exc)
    rep = queue.linked_rep(link)
    if rep is None:
        return withdrawn()
    items = queue_items(queue.pending(rep.id), rep, settings, current_app.secret_key, utcnow())
    return render_template("queue.html", rep=rep, items=items, zone=rep_zone(rep.time_zone).key)
