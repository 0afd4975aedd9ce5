"""One function per email: it reads the rows it needs and returns the template context.
deliver() renders claimed outbox rows and sends them over one transport connection."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import links, mail, outbox
from .config import base_url
from .models import Activity, Handoff, OutboxEmail


def rep_handoff(row: OutboxEmail, settings: dict, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    lead = handoff.lead
    activities = (Activity.select().where(Activity.lead == lead.id)
                  .order_by(Activity.occurred_at.desc()).limit(10))
    root = base_url(settings)
    return {
        "handoff": handoff, "lead": lead, "rep": handoff.rep,
        "activities": list(activities), "definition": handoff.definition,
        "deadline": local_time(handoff.due_at, handoff.rep.time_zone),
        "accept_url": f"{root}/h/{links.handoff_token(secret, handoff.id, 'accept')}",
        "reject_url": f"{root}/h/{links.handoff_token(secret, handoff.id, 'reject')}",
    }


CONTEXTS = {"rep_handoff": rep_handoff}


def local_time(moment: datetime, zone: str) -> str:
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return moment.astimezone(tz).strftime(f"%a %d %b %Y, %H:%M ({tz.key})")


def compose(row: OutboxEmail, settings: dict, secret: str):
    context = {**row.context, **CONTEXTS[row.template](row, settings, secret)}
    subject, text, html = mail.render(row.template, context)
    message = mail.build_message(
        sender=settings["mail.from_address"], sender_name=settings["mail.from_name"],
        to_address=row.to_address, to_name=row.to_name, message_id=row.message_id,
        subject=subject, text=text, html=html)
    return message, subject, text, html


def deliver(outbox_ids: list[int], *, settings: dict, secret: str, now: datetime) -> int:
    """Send the rows this call can claim; return how many were sent."""
    claimed = [i for i in outbox_ids
               if outbox.claim(i, now=now, claim_seconds=settings["outbox.claim_seconds"])]
    batch = []
    for row in OutboxEmail.select().where(OutboxEmail.id.in_(claimed)).order_by(OutboxEmail.id):
        batch.append((row.id, compose(row, settings, secret)))
    try:
        mail.transport(settings).send([(i, parts[0]) for i, parts in batch])
    except Exception as exc:
        for outbox_id, _ in batch:
            outbox.mark_failed(outbox_id, error=f"{type(exc).__name__}: {exc}")
        raise
    for outbox_id, (_, subject, text, html) in batch:
        outbox.mark_sent(outbox_id, subject=subject, body_text=text, body_html=html, now=now)
    return len(batch)
