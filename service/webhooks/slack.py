"""The Slack format: an incoming-webhook message, one short sentence per event with a link
to the lead in the panel. Every text from outside goes through escape()."""

from __future__ import annotations

from service.core.config import base_url
from service.core.models import WebhookEvent
from service.core.settings import Settings
from service.core.text import one_line
from service.handoffs.labels import LABELS

SENTENCES = {
    "lead.created": "New lead: {lead}",
    "lead.mql": "{lead} is now an MQL{to_rep}",
    "handoff.accepted": "{rep} accepted {lead}{bant}",
    "handoff.rejected": "{rep} rejected {lead}{reason}",
    "handoff.reassigned": "{lead} was reassigned{to_rep}",
    "handoff.escalated": "{lead} is overdue with {rep}: escalated",
    "lead.sql": "{lead} is a sales-qualified lead{to_rep}",
    "lead.customer": "{lead} became a customer",
    "lead.nurture": "{lead} moved to nurture",
    "lead.disqualified": "{lead} was disqualified",
    "lead.reengaged": "{lead} is back: re-engaged",
    "lead.unsubscribed": "{lead} unsubscribed",
    "lead.erased": "Lead {lead_id} was erased",
}
BANT = ("budget", "authority", "need", "timeline")


def escape(value: object) -> str:
    """Text from outside as Slack mrkdwn shows it literally: one line, with &, < and >
    escaped (so no link, mention or formatting can be smuggled in)."""
    return (one_line(value).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def message(event: WebhookEvent, settings: Settings) -> dict:
    """{"text": …} for Slack's incoming webhooks."""
    if event.type not in SENTENCES:
        return {"text": escape(event.data.get("message") or event.type)}
    data = event.data or {}
    lead, handoff = data.get("lead") or {}, data.get("handoff") or {}
    text = SENTENCES[event.type].format(
        lead=lead_name(lead), lead_id=int(lead.get("id") or 0), rep=rep_name(lead, handoff),
        to_rep=f" for {rep_name(lead, handoff)}" if handoff or lead.get("owner") else "",
        bant=bant(handoff), reason=f": {escape(handoff['reason'])}" if handoff.get("reason")
        else "")
    if lead.get("id") and event.type != "lead.erased":
        text += f" <{lead_url(settings, int(lead['id']))}|Open in Leadbridge>"
    return {"text": text}


def lead_name(lead: dict) -> str:
    name = " ".join(filter(None, (lead.get("first_name"), lead.get("last_name"))))
    shown = escape(name or lead.get("email") or f"lead {lead.get('id', '')}")
    return f"*{shown}* ({escape(lead['company'])})" if lead.get("company") else f"*{shown}*"


def rep_name(lead: dict, handoff: dict) -> str:
    owner = lead.get("owner") or {}
    email = handoff.get("rep") or owner.get("email") or ""
    name = owner.get("name") if owner.get("email") == email else ""
    return escape(name or email or "the rep")


def bant(handoff: dict) -> str:
    answers = handoff.get("bant") or {}
    said = [f"{part} {LABELS.get(answers[part], answers[part]).lower()}" for part in BANT
            if answers.get(part)]
    return f": {escape(', '.join(said))}" if said else ""


def lead_url(settings: Settings, lead_id: int) -> str:
    return f"{base_url(settings)}/admin/lead/details/?id={lead_id}"
