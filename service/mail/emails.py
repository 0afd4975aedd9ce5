"""One function per email: it reads the rows it needs and returns the template context
(CONTEXTS names them by template), with the headers that depend on who gets it.
service/mail/delivery.py composes and sends them."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.accounts import users
from service.content.reasons import reason_label
from service.core import links
from service.core.addresses import normalise_email
from service.core.config import base_url
from service.core.db import utcnow
from service.core.errors import InvalidInput
from service.core.models import (
    Activity,
    Definition,
    Handoff,
    HandoffMessage,
    InboundEmail,
    Lead,
    OutboxEmail,
    Rep,
    User,
)
from service.core.settings import Settings
from service.core.statuses import HandoffStatus
from service.handoffs import queue
from service.handoffs.labels import LABELS
from service.handoffs.thread import reply_thread
from service.leads.scoring import Policy
from service.reports import digest

log = logging.getLogger(__name__)


def rep_handoff(row: OutboxEmail, settings: Settings, secret: str) -> dict:
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
        "accept_url": decision_url(settings, secret, handoff, "accept", rep),
        "reject_url": decision_url(settings, secret, handoff, "reject", rep),
        "queue_url": queue_url(settings, secret, rep),
    }


def decision_url(settings: Settings, secret: str, handoff: Handoff, action: str,
                 rep: Rep) -> str:
    """An Accept or Reject link for the handoff's rep, signed with the rep's current link
    version: revoking the rep's links ends it with their queue links."""
    token = links.handoff_token(secret, handoff.id, rep.id, action, handoff.lead.public_id,
                                rep.link_version)
    return f"{base_url(settings)}/h/{token}"


def queue_url(settings: Settings, secret: str, rep: Rep) -> str:
    """The link to the rep's queue page, signed with the rep's current link version."""
    return f"{base_url(settings)}/r/{links.queue_token(secret, rep.id, rep.link_version)}"


def queue_items(handoffs: list[Handoff], rep: Rep, settings: Settings, secret: str,
                now: datetime) -> list[dict]:
    """Pending handoffs as the rep sees them: the deadline in the rep's time zone, the time
    left, and decision links."""
    return [{"handoff": handoff, "lead": handoff.lead,
             "deadline": local_time(handoff.due_at, rep.time_zone),
             "time_left": time_left(handoff.due_at, now), "overdue": handoff.due_at <= now,
             "accept_url": decision_url(settings, secret, handoff, "accept", rep),
             "reject_url": decision_url(settings, secret, handoff, "reject", rep)}
            for handoff in handoffs]


def time_left(due_at: datetime, now: datetime) -> str:
    left = due_at - now
    return f"{span(left)} left" if left.total_seconds() > 0 else f"overdue by {span(left)}"


MORNING_LIST = 5  # the most urgent handoffs a morning email names


def rep_morning(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    """The rep's morning summary: how many handoffs wait, the nearest deadlines, the queue."""
    rep = Rep.get_by_id(row.context["rep_id"])
    waiting = queue.pending(rep.id)
    return {"rep": rep, "count": len(waiting), "more": max(0, len(waiting) - MORNING_LIST),
            "items": queue_items(waiting[:MORNING_LIST], rep, settings, secret, utcnow()),
            "queue_url": queue_url(settings, secret, rep)}


def decision_feedback(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    outcome = handoff.outcome or ""
    return {"handoff": handoff, "lead": handoff.lead, "rep": handoff.rep, "labels": LABELS,
            "reason_label": reason_label(handoff.reason),
            "outcome_label": "disqualified" if outcome == "disqualify"
            else f"nurture sequence {outcome.partition(':')[2]}"}


def handoff_moved(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    old = Handoff.get_by_id(row.handoff_id)
    new = old.replaced_by.order_by(Handoff.id.desc()).first()
    return {"lead": old.lead, "rep": old.rep, "new_rep": new.rep if new else old.rep,
            "queue_url": queue_url(settings, secret, old.rep)}


def span(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"]
    return " ".join(parts[:2])


def sla_reminder(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    left = handoff.due_at - utcnow()
    return {"handoff": handoff, "lead": handoff.lead, "rep": handoff.rep,
            "deadline": local_time(handoff.due_at, handoff.rep.time_zone),
            "time_left": f"{span(left)} left" if left.total_seconds() > 0 else "overdue",
            "accept_url": decision_url(settings, secret, handoff, "accept", handoff.rep),
            "reject_url": decision_url(settings, secret, handoff, "reject", handoff.rep),
            "queue_url": queue_url(settings, secret, handoff.rep)}


def sla_escalation(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    late = utcnow() - handoff.due_at
    root = base_url(settings)
    return {"handoff": handoff, "lead": handoff.lead, "rep": handoff.rep,
            "overdue": f"{span(late)} ago" if late.total_seconds() > 0 else "just now",
            "handoff_url": f"{root}/admin/handoff/details/?id={handoff.id}",
            "reassign_url": f"{root}/admin/pending/reassign/?ids={handoff.id}"}


def mql_undecided(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    handoff = Handoff.get_by_id(row.handoff_id)
    root = base_url(settings)
    return {"handoff": handoff, "lead": handoff.lead, "rep": handoff.rep,
            "steps": handoff.episode(), "first_due": handoff.first_due_at or handoff.due_at,
            "handoff_url": f"{root}/admin/handoff/details/?id={handoff.id}",
            "reassign_url": f"{root}/admin/pending/reassign/?ids={handoff.id}"}


def lead_reengaged(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    lead = Lead.get_by_id(row.lead_id)
    recent = (Activity.select().where(Activity.lead == lead.id)
              .order_by(Activity.occurred_at.desc()).limit(5))
    return {"lead": lead, "activities": list(recent),
            "lead_url": f"{base_url(settings)}/admin/lead/details/?id={lead.id}"}


def handoff_message(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    """A message on a handoff's thread, to the other side: the rep gets the decision links
    while the handoff waits, the marketer a link to the handoff."""
    message = HandoffMessage.get_by_id(row.context["message_id"])
    handoff = message.handoff
    to_rep = message.author == "marketer"
    pending = to_rep and handoff.status == HandoffStatus.PENDING
    rep = handoff.rep
    return {"message": message, "handoff": handoff, "lead": handoff.lead,
            "author": message.author_name or message.author_address,
            "accept_url": decision_url(settings, secret, handoff, "accept", rep) if pending
            else "",
            "reject_url": decision_url(settings, secret, handoff, "reject", rep) if pending
            else "",
            "queue_url": queue_url(settings, secret, rep) if to_rep else "",
            "handoff_url": "" if to_rep else
            f"{base_url(settings)}/admin/handoff/details/?id={handoff.id}"}


def prospect_replied(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    reply = InboundEmail.get_by_id(row.context["inbound_id"])
    lead = Lead.get_by_id(row.lead_id)
    return {"lead": lead, "reply": reply,
            "lead_url": f"{base_url(settings)}/admin/lead/details/?id={lead.id}"}


def weekly_digest(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    return {**digest.context(row.context["start"], row.context["end"], settings),
            "dashboard_url": f"{base_url(settings)}/admin/?period=week"}


def password_reset(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    """The link is signed only while a sender holds the row: a preview of the waiting email
    in the panel shows none, and the outbox keeps no copy of the sent one (UNKEPT)."""
    user = User.get_by_id(row.context["user_id"])
    url = "(the link is made when the email is sent)"
    if row.claimed_at is not None and row.sent_at is None:
        url = f"{base_url(settings)}/admin/reset/{users.reset_token(secret, user)}"
    return {"user": user, "hours": users.RESET_HOURS, "reset_url": url}


def webhook_endpoint_disabled(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    """What the endpoint was is in the row's context (it may be deleted since)."""
    return {"webhooks_url": f"{base_url(settings)}/admin/webhooks/"}


def prospect(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    """Context of every email to a prospect: personalisation, unsubscribe, tracked links."""
    root = base_url(settings)
    lead = row.lead or Lead(email=row.to_address)  # joined in deliver(); gone if erased

    signed: dict[str, str] = {}

    def track(url: str) -> str:
        """A link in both bodies is signed once."""
        if not isinstance(url, str):
            return f"{root}/c/{links.click_token(secret, row.id, url, lead.public_id)}"
        if url not in signed:
            signed[url] = f"{root}/c/{links.click_token(secret, row.id, url, lead.public_id)}"
        return signed[url]

    return {"lead": lead, "sender": settings.mail.from_name, "track": track,
            "postal_address": settings.mail.postal_address,
            "unsubscribe_url": f"{root}/u/{unsubscribe_token(row, secret)}"}


def unsubscribe_token(row: OutboxEmail, secret: str) -> str:
    lead = row.lead or Lead(id=0, email=row.to_address)
    return _unsubscribe_token(secret, lead.id, lead.public_id)


@lru_cache(maxsize=64)
def _unsubscribe_token(secret: str, lead_id: int | None, public_id: str) -> str:
    """Signed once for an email's footer link and its List-Unsubscribe header."""
    return links.unsubscribe_token(secret, lead_id, public_id)


def unsubscribe_headers(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    """RFC 2369 and RFC 8058 one-click unsubscribe."""
    token = unsubscribe_token(row, secret)
    mailbox = (settings.mail.unsubscribe_mailto
               or "unsubscribe@" + settings.mail.from_address.rpartition("@")[2])
    return {"List-Unsubscribe": f"<{base_url(settings)}/u/{token}>, "
                                f"<mailto:{mailbox}?subject=unsubscribe%20{token}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def definition_changed(row: OutboxEmail, settings: Settings, secret: str) -> dict:
    definition = Definition.get_by_id(row.context["definition_id"])
    previous = Definition.get_or_none(Definition.kind == definition.kind,
                                      Definition.version == definition.version - 1)
    return {"definition": definition, "previous": previous}


CONTEXTS = {"rep_handoff": rep_handoff, "decision_feedback": decision_feedback,
            "definition_changed": definition_changed,
            "handoff_moved": handoff_moved, "sla_reminder": sla_reminder,
            "rep_morning": rep_morning,
            "sla_escalation": sla_escalation, "mql_undecided": mql_undecided,
            "lead_reengaged": lead_reengaged, "handoff_message": handoff_message,
            "prospect_replied": prospect_replied,
            "weekly_digest": weekly_digest, "password_reset": password_reset,
            "webhook_endpoint_disabled": webhook_endpoint_disabled}
UNKEPT = ("password_reset",)  # their body is a credential: the outbox keeps the subject only


TO_REP = ("rep_handoff", "sla_reminder", "handoff_moved")
ABOUT_REP = ("decision_feedback", "sla_escalation", "mql_undecided")


def reply_to(row: OutboxEmail, settings: Settings, secret: str,
             owners: dict[int, tuple[str, str]] | None = None) -> tuple[str, str] | None:
    """Where a reply goes, as (name, email). With inbound.reply_address, a reply to an email
    someone converses on comes back to Leadbridge (reply_address); otherwise it reaches a
    person: a rep's email goes back to the promoter, an email about a rep's handoff to that
    rep, a prospect's to the lead's owner (the rep of its latest handoff), a prospect's reply
    to the prospect; else mail.reply_to (empty: no Reply-To). `owners` is owners_of() the
    batch's leads, when the caller has read them."""
    if settings.inbound.reply_address and (thread := reply_thread(row, settings)):
        return settings.mail.from_name, reply_address(settings, secret, row, *thread)
    person = None
    if row.template == "prospect_replied" and row.lead_id is not None:
        person = Lead.get_by_id(row.lead_id)
    if row.to_prospect and row.lead_id is not None:
        owner = (owners if owners is not None else owners_of([row.lead_id])).get(row.lead_id)
        return owner or _default_reply_to(settings)
    if row.handoff_id is not None and row.template in TO_REP + ABOUT_REP:
        handoff = Handoff.get_by_id(row.handoff_id)
        if row.template in ABOUT_REP:
            person = handoff.rep
        elif promoter := _address(handoff.promoted_by):
            return "", promoter
    if person is not None:
        return person.name, person.email
    return _default_reply_to(settings)


def _default_reply_to(settings: Settings) -> tuple[str, str] | None:
    return parseaddr(settings.mail.reply_to) if settings.mail.reply_to else None


def owners_of(lead_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Each lead's owner, the rep of its latest handoff, as (name, email), in one query;
    leads with no handoff are left out."""
    if not lead_ids:
        return {}
    rows = (Handoff.select(Handoff.lead, Rep.name, Rep.email).join(Rep)
            .where(Handoff.lead.in_(sorted(set(lead_ids)))).order_by(Handoff.id).tuples())
    return {lead_id: (name, email) for lead_id, name, email in rows}  # the latest wins


def reply_address(settings: Settings, secret: str, row: OutboxEmail, thread: str,
                  thread_id: int, role: str) -> str:
    """<local>+<token>@<domain> of inbound.reply_address, the token signed on the day the
    email was written (so a resend carries the same address)."""
    local, _, domain = settings.inbound.reply_address.rpartition("@")
    day = (row.created_at.date() - date(1970, 1, 1)).days
    return f"{local}+{links.reply_token(secret, thread, thread_id, role, day)}@{domain}"


def _address(text: str) -> str:
    """text when it is an email address (a promoter may be "auto-promotion" or "api:…")."""
    try:
        return normalise_email(text)
    except InvalidInput:
        return ""


def local_time(moment: datetime, zone: str) -> str:
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return moment.astimezone(tz).strftime(f"%a %d %b %Y, %H:%M ({tz.key})")


