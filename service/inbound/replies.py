"""What a reply does once its thread is known: a rep's or a marketer's goes on the handoff's
thread, a prospect's ends the sequence and reaches the lead's owner, an out-of-office of a
rep is noted on the handoff, a delivery report counts as a bounce."""

from __future__ import annotations

from datetime import datetime, timedelta

from service import events
from service.core import outbox
from service.core.models import Activity, Handoff, InboundEmail, Lead, OutboxEmail, User
from service.core.statuses import InboundStatus
from service.handoffs import thread as handoff_thread
from service.inbound.matching import Thread
from service.inbound.parse import DeliveryReport, ParsedMail
from service.intake.activity import record_events
from service.intake.event import Event
from service.leads.scoring import Policy
from service.lifecycle import stop_enrollments
from service.nurture.bounces import ProviderEvent, apply
from service.nurture.sequences import marketers_of

OOO_NOTE = 500  # characters of an out-of-office notice shown on the handoff


def reply(email: InboundEmail, mail: ParsedMail, thread: Thread) -> str:
    context = thread.context
    if thread.kind == "handoff":
        handoff_thread.post(thread.handoff, author=thread.role, address=mail.from_address,
                            name=mail.from_name, body=mail.text, via="email",
                            settings=context.settings, now=context.now, inbound_id=email.id)
        return InboundStatus.POSTED
    prospect_replied(email, mail, thread)
    return InboundStatus.REPLIED


def prospect_replied(email: InboundEmail, mail: ParsedMail, thread: Thread) -> None:
    """The re-engagement path, fed by a reply: an email_reply activity (scored), the
    sequence stopped ("replied"), the lead flagged re-engaged and its owner told."""
    settings, now, lead = thread.context.settings, thread.context.now, thread.lead
    stop_enrollments(lead.id, reason="replied", now=now)
    Lead.update(re_engaged_at=now).where(Lead.id == lead.id).execute()
    if _replied_lately(lead.id, now):
        return  # kept and shown; scored and told once an hour at most, whatever a sender sends
    events.emit("lead.reengaged", lead.id, now=now)
    record_events([Event(type="email_reply", occurred_at=now, email=lead.email,
                         properties={"subject": mail.subject[:200],
                                     "sequence": thread.enrollment.sequence})],
                  source="email", now=now, policy=Policy.from_settings(settings))
    for address, name in owners(lead.id, settings):
        outbox.queue_email("prospect_replied", to_address=address, to_name=name,
                           lead_id=lead.id, now=now, context={"inbound_id": email.id})


def _replied_lately(lead_id: int, now: datetime) -> bool:
    return Activity.select().where(Activity.lead == lead_id, Activity.type == "email_reply",
                                   Activity.occurred_at > now - timedelta(hours=1)).exists()


def owners(lead_id: int, settings) -> list[tuple[str, str]]:
    """Who owns the lead: the rep of its latest handoff, else the marketers (its last
    promoter and nurture.notify, else every marketer with a login)."""
    last = (Handoff.select().where(Handoff.lead == lead_id).order_by(Handoff.id.desc())
            .first())
    if last is not None and last.rep.active:
        return [(last.rep.email, last.rep.name)]
    people = marketers_of(lead_id, settings)  # as the re-engagement path tells them
    if not people:
        people = [user.email for user in User.select().where(User.role == "marketer")]
    return [(address, "") for address in people]


def auto_reply(email: InboundEmail, mail: ParsedMail, thread: Thread) -> str:
    """Not a reply: kept and noted. A rep's out-of-office shows on the handoff (the SLA
    runs on)."""
    if mail.out_of_office and thread.role == "rep" and thread.sent_by(mail.from_address):
        note = (mail.subject + "\n\n" + mail.text).strip()[:OOO_NOTE]
        handoff_thread.post(thread.handoff, author="rep", address=mail.from_address,
                            name=mail.from_name, body=note, via="email",
                            settings=thread.context.settings, now=thread.context.now,
                            inbound_id=email.id, kind="out_of_office")
        return "out-of-office auto-reply: noted on the handoff"
    return f"auto-reply ({mail.auto_reply}): not a reply"


def delivery_report(email: InboundEmail, report: DeliveryReport,
                    context: Thread.Context) -> tuple[str, str, dict]:
    """A DSN for one of our emails: each failed recipient is a bounce (5.x.x hard, 4.x.x
    soft) through the suppression path."""
    sent = OutboxEmail.get_or_none(OutboxEmail.message_id == report.original_message_id)
    if sent is None:
        return (InboundStatus.UNMATCHED, "a delivery report for an email Leadbridge did not "
                "send", {})
    # Only the address that email went to: a report naming others (anyone can write one
    # about a Message-ID they received) suppresses nobody else.
    events = [ProviderEvent(address, "hard_bounce" if status.startswith("5")
                            else "soft_bounce", f"{action} {status}")
              for address, action, status in report.recipients
              if address.lower() == sent.to_address.lower()
              and (action.lower() == "failed" or status.startswith(("4", "5")))
              and action.lower() != "delayed"][:1]
    apply(events, provider="dsn", raw={"inbound_email": email.id}, settings=context.settings,
          now=context.now)
    links = {"lead": sent.lead_id, "handoff": sent.handoff_id}
    if not events:
        return InboundStatus.NOTED, "a delivery report with no failed recipient", links
    return (InboundStatus.BOUNCED, "; ".join(f"{e.email}: {e.kind} ({e.detail})"
                                             for e in events), links)
