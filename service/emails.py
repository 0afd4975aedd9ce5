"""One function per email: it reads the rows it needs and returns the template context.
deliver() renders claimed outbox rows and sends them over one transport connection."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import links, mail, outbox
from .config import base_url
from .db import utcnow
from .labels import LABELS
from .models import Activity, Handoff, OutboxEmail
from .scoring import Policy


def rep_handoff(row: OutboxEmail, settings: dict, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    lead, rep = handoff.lead, handoff.rep
    activities = (Activity.select().where(Activity.lead == lead.id)
                  .order_by(Activity.occurred_at.desc(), Activity.id.desc()).limit(10))
    policy = Policy.from_settings(settings)
    return {
        "handoff": handoff, "lead": lead, "rep": rep,
        "activities": list(activities), "definition": handoff.definition,
        "score": round(policy.score(lead.score_log, utcnow())),
        "threshold": round(policy.threshold),
        "deadline": local_time(handoff.due_at, rep.time_zone),
        "accept_url": decision_url(settings, secret, handoff, "accept"),
        "reject_url": decision_url(settings, secret, handoff, "reject"),
    }


def decision_url(settings: dict, secret: str, handoff: Handoff, action: str) -> str:
    token = links.handoff_token(secret, handoff.id, handoff.rep_id, action)
    return f"{base_url(settings)}/h/{token}"


def decision_feedback(row: OutboxEmail, settings: dict, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    reason = settings["handoff.reject_reasons"].get(handoff.reason, {})
    outcome = handoff.outcome or ""
    return {"handoff": handoff, "lead": handoff.lead, "rep": handoff.rep, "labels": LABELS,
            "reason_label": reason.get("label", handoff.reason),
            "outcome_label": "disqualified" if outcome == "disqualify"
            else f"nurture sequence {outcome.partition(':')[2]}"}


def handoff_moved(row: OutboxEmail, settings: dict, secret: str) -> dict:
    old = Handoff.get_by_id(row.handoff_id)
    new = old.replaced_by.order_by(Handoff.id.desc()).first()
    return {"lead": old.lead, "rep": old.rep, "new_rep": new.rep if new else old.rep}


def span(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"]
    return " ".join(parts[:2])


def sla_reminder(row: OutboxEmail, settings: dict, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    left = handoff.due_at - utcnow()
    return {"handoff": handoff, "lead": handoff.lead, "rep": handoff.rep,
            "deadline": local_time(handoff.due_at, handoff.rep.time_zone),
            "time_left": f"{span(left)} left" if left.total_seconds() > 0 else "overdue",
            "accept_url": decision_url(settings, secret, handoff, "accept"),
            "reject_url": decision_url(settings, secret, handoff, "reject")}


def sla_escalation(row: OutboxEmail, settings: dict, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    late = utcnow() - handoff.due_at
    root = base_url(settings)
    return {"handoff": handoff, "lead": handoff.lead, "rep": handoff.rep,
            "overdue": f"{span(late)} ago" if late.total_seconds() > 0 else "just now",
            "handoff_url": f"{root}/admin/handoff/details/?id={handoff.id}",
            "reassign_url": f"{root}/admin/pending/reassign/?ids={handoff.id}"}


CONTEXTS = {"rep_handoff": rep_handoff, "decision_feedback": decision_feedback,
            "handoff_moved": handoff_moved, "sla_reminder": sla_reminder,
            "sla_escalation": sla_escalation}


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
