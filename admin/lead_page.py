"""The lead page as a workspace: the actions that apply now, one timeline of everything that
happened to the lead (newest first, a page at a time), the score's breakdown and the
nurture section. Each timeline kind is one indexed query bounded by the page size, so a lead
with a hundred thousand activities renders as fast as one with ten."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.core import csp
from service.core.db import utcnow
from service.core.errors import DomainError, InvalidInput
from service.core.models import (
    Activity,
    EmailClick,
    EmailEvent,
    Enrollment,
    Handoff,
    InboundEmail,
    Lead,
    LeadMerge,
    OutboxEmail,
    Rep,
    StageChange,
)
from service.core.runtime import runtime
from service.core.scores import Policy
from service.handoffs import thread
from service.leads import scoring
from service.nurture import sequences as nurture

from .auth import EVERYONE, MANAGERS, MARKETING, role_in

PAGE = 100  # timeline items a page
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
BANT = ("budget", "authority", "need", "timeline")


@dataclass(frozen=True)
class LeadAction:
    """One thing the user may do to the lead now: a POST to a panel action (name) or a link
    to its page (href); confirm is the question a browser asks first."""
    label: str
    name: str = ""
    href: str = ""
    confirm: str = ""
    style: str = "outline-primary"


# What each stage allows, and who: (action, label, roles, confirmation), in the header's order.
STAGE_ACTIONS: dict[str, list[tuple[str, str, tuple[str, ...], str]]] = {
    "lead": [("promote", "Promote to MQL", EVERYONE, ""),
             ("enroll", "Enroll in nurture", MARKETING, ""),
             ("outbound", "Register as outbound SQL", MANAGERS, "")],
    "nurture": [("promote", "Promote to MQL", EVERYONE, ""),
                ("enroll", "Enroll in nurture", MARKETING, ""),
                ("outbound", "Register as outbound SQL", MANAGERS, "")],
    "mql": [("reassign", "Reassign", MANAGERS, ""), ("withdraw", "Withdraw", MANAGERS, "")],
    "sql": [("win", "Mark won", MANAGERS, "Mark this SQL as a customer?"),
            ("recycle", "Recycle to nurture", MANAGERS, "Move this SQL back to nurture?")],
    "disqualified": [("reopen", "Reopen", MANAGERS, "Reopen this disqualified lead?")],
    "customer": [],
}


def confirm_handler(question: str) -> str:
    """The onclick that asks before a POST; allowed by the CSP for each question here."""
    return f"return faHelpers.safeConfirm('{question}');"


for _actions in STAGE_ACTIONS.values():
    for *_, _question in _actions:
        if _question:
            csp.allow_handler(confirm_handler(_question))
csp.allow_handler(confirm_handler("Stop the nurture emails to this lead?"))


KINDS = ("activity", "email", "click", "email_event", "stage", "handoff", "enrollment", "merge")
RANK = {kind: rank for rank, kind in enumerate(KINDS)}  # orders items of one instant
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Cursor:
    """Where the next timeline page starts: items strictly before (at, rank, id) in the
    timeline's order (time, then kind, then id, each descending). Items sharing an instant
    (a promotion writes its handoff, stage change and rep email at once) are never lost
    or shown twice across a page boundary."""
    at: datetime
    rank: int = len(KINDS)
    id: int = 0

    def token(self) -> str:
        return f"{(self.at - EPOCH) // MICROSECOND}.{self.rank}.{self.id}"

    def before(self, column, id_column, kind: str):
        """A kind's items before the cursor: at < c_at or (at = c_at and (rank, id) <
        (c_rank, c_id)), where the kind's rank is a constant."""
        rank = RANK[kind]
        if rank < self.rank:
            return column <= self.at
        if rank == self.rank:
            return (column < self.at) | ((column == self.at) & (id_column < self.id))
        return column < self.at


NEWEST = Cursor(LATEST)


def before_from(value: str | None) -> Cursor:
    """The timeline page's cursor (`before`: microseconds since 1970, optionally followed
    by .rank.id of the last item shown), or the newest page."""
    if not value:
        return NEWEST
    micros, _, rest = value.partition(".")
    rank, _, last_id = rest.partition(".")
    if not all(part.isascii() and part.isdigit() for part in (micros, rank or "0",
                                                                last_id or "0")) \
            or len(micros) > 17 or len(rank) > 2 or len(last_id) > 18:
        raise InvalidInput("before must be a time in microseconds since 1970")
    try:
        at = EPOCH + int(micros) * MICROSECOND
    except OverflowError:
        raise InvalidInput("before is out of range") from None
    if not rest:
        return Cursor(at)  # a bare time: everything older than it
    return Cursor(at, min(int(rank or 0), len(KINDS)), int(last_id or 0))


@dataclass
class Item:
    kind: str
    at: datetime
    row: object
    extra: dict = field(default_factory=dict)

    def key(self) -> tuple[datetime, int, int]:
        return self.at, RANK[self.kind], self.row.id


def timeline(lead: Lead, before: Cursor, now: datetime, policy: Policy) -> dict:
    """Up to PAGE items before the cursor, newest first, of every kind; `older` is the
    cursor of the next page (None on the last)."""
    items = [*activities(lead, before, policy, now), *emails(lead, before),
             *clicks(lead, before), *provider_events(lead, before), *stage_changes(lead, before),
             *handoffs(lead, before, now), *enrollments(lead, before), *merges(lead, before)]
    items.sort(key=Item.key, reverse=True)
    page = items[:PAGE]
    with_threads(page)
    older = Cursor(*page[-1].key()).token() if len(items) > PAGE else None
    return {"items": page, "older": older}


def newest(query, column, id_column, before: Cursor, kind: str):
    """A kind's first PAGE + 1 items before the cursor, in the timeline's order (one more
    than a page: whether an older page exists)."""
    return (query.where(before.before(column, id_column, kind))
            .order_by(column.desc(), id_column.desc()).limit(PAGE + 1))


def activities(lead, before, policy, now):
    rows = newest(Activity.select().where(Activity.lead == lead.id), Activity.occurred_at,
                  Activity.id, before, "activity")
    return [Item("activity", a.occurred_at, a, {
        "points": policy.points.get(a.type, 0),
        "now": round(policy.decayed(a.type, a.occurred_at, now), 2)}) for a in rows]


def emails(lead, before):
    """Emails to the lead, placed when written (sent ones show when they went)."""
    rows = newest(OutboxEmail.select(OutboxEmail.id, OutboxEmail.template, OutboxEmail.subject,
                                     OutboxEmail.to_address, OutboxEmail.created_at,
                                     OutboxEmail.sent_at, OutboxEmail.failed_at,
                                     OutboxEmail.skipped_at, OutboxEmail.skip_reason,
                                     OutboxEmail.to_prospect)
                  .where(OutboxEmail.lead == lead.id), OutboxEmail.created_at, OutboxEmail.id,
                  before, "email")
    return [Item("email", e.created_at, e) for e in rows]


def clicks(lead, before):
    rows = newest(EmailClick.select(EmailClick, OutboxEmail.subject.alias("subject"))
                  .join(OutboxEmail, on=(EmailClick.outbox == OutboxEmail.id))
                  .where(OutboxEmail.lead == lead.id), EmailClick.at, EmailClick.id, before,
                  "click").objects()
    return [Item("click", c.at, c) for c in rows]


def provider_events(lead, before):
    """Opens, bounces and complaints the email provider reported for the lead's address."""
    rows = newest(EmailEvent.select(EmailEvent.id, EmailEvent.kind, EmailEvent.at,
                                    EmailEvent.detail, EmailEvent.provider)
                  .where(EmailEvent.email == lead.email), EmailEvent.at, EmailEvent.id,
                  before, "email_event")
    return [Item("email_event", e.at, e) for e in rows]


def stage_changes(lead, before):
    rows = newest(StageChange.select().where(StageChange.lead == lead.id), StageChange.at,
                  StageChange.id, before, "stage")
    return [Item("stage", s.at, s) for s in rows]


def handoffs(lead, before, now):
    """Handoffs with their rep (one join); their threads are read once for the page."""
    rows = newest(Handoff.select(Handoff, Rep).join(Rep).where(Handoff.lead == lead.id),
                  Handoff.promoted_at, Handoff.id, before, "handoff")
    return [Item("handoff", h.promoted_at, h, {
        "clock": sla_clock(h, now), "messages": [],
        "bant": {name: getattr(h, name) for name in BANT if getattr(h, name)}}) for h in rows]


def with_threads(page: list[Item]) -> None:
    """The page's handoffs' messages, in one query."""
    shown = {item.row.id: item for item in page if item.kind == "handoff"}
    if shown:
        for message in thread.messages(list(shown)):
            shown[message.handoff_id].extra["messages"].append(message)


def enrollments(lead, before):
    rows = newest(Enrollment.select().where(Enrollment.lead == lead.id), Enrollment.started_at,
                  Enrollment.id, before, "enrollment")
    return [Item("enrollment", e.started_at, e) for e in rows]


def merges(lead, before):
    rows = newest(LeadMerge.select().where(LeadMerge.survivor == lead.id), LeadMerge.at,
                  LeadMerge.id, before, "merge")
    return [Item("merge", m.at, m) for m in rows]


def sla_clock(handoff: Handoff, now: datetime) -> dict:
    """A pending handoff's time left (or how long overdue); a decided one's SLA met or not."""
    if handoff.status != "pending":
        return {"text": {True: "SLA met", False: "SLA missed", None: ""}[handoff.sla_met],
                "overdue": handoff.sla_met is False}
    seconds = int((handoff.due_at - now).total_seconds())
    hours, minutes = divmod(abs(seconds) // 60, 60)
    span = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return {"text": f"{span} left" if seconds >= 0 else f"overdue by {span}",
            "overdue": seconds < 0}


def score_breakdown(lead: Lead, policy: Policy, now: datetime) -> dict:
    """How the score is made (service.leads.scoring.contributions) and its total."""
    types = scoring.contributions(lead.id, policy, now)
    return {"types": types, "total": sum(r["points"] for r in types),
            "score": policy.score(lead.score_log, now), "half_life": policy.half_life_days,
            "threshold": policy.threshold}


def nurture_section(lead: Lead) -> dict:
    """The lead's current (else latest) enrollment, its sequence's steps and the next due."""
    enrollment = (Enrollment.select().where(Enrollment.lead == lead.id)
                  .order_by(Enrollment.status != "active", Enrollment.started_at.desc())
                  .first())
    steps = []
    if enrollment is not None:
        try:
            steps = nurture.steps(runtime.settings, enrollment.sequence)
        except DomainError:
            steps = []  # a sequence taken out of the configuration since
    return {"enrollment": enrollment, "steps": steps}


def actions(lead: Lead, pending: Handoff | None, enrolled: bool) -> list[LeadAction]:
    """The actions that apply to the lead's stage now and that the user's role may take."""
    found = [LeadAction(label, name=name, confirm=confirm)
             for name, label, roles, confirm in STAGE_ACTIONS.get(lead.stage, [])
             if role_in(roles) and (name not in ("reassign", "withdraw") or pending)]
    if enrolled and role_in(MARKETING):
        found.append(LeadAction("Stop nurture", name="stop_nurture",
                                confirm="Stop the nurture emails to this lead?"))
    if role_in(MARKETING):
        found.append(LeadAction("Merge with a duplicate", name="merge_with"))
    return found


def header(lead: Lead, policy: Policy, now: datetime) -> dict:
    pending = (Handoff.select().where(Handoff.lead == lead.id, Handoff.status == "pending")
               .first())
    latest = (Handoff.select().where(Handoff.lead == lead.id)
              .order_by(Handoff.id.desc()).first())
    enrolled = Enrollment.select().where(Enrollment.lead == lead.id,
                                         Enrollment.status == "active").exists()
    return {"score": policy.score(lead.score_log, now), "owner": latest.rep if latest else None,
            "pending": pending, "clock": sla_clock(pending, now) if pending else None,
            "actions": actions(lead, pending, enrolled),
            "stages": list(StageChange.select(StageChange.to_stage)
                           .where(StageChange.lead == lead.id)
                           .order_by(StageChange.at, StageChange.id).limit(50))}


def workspace(lead: Lead, before_value: str | None, policy: Policy) -> dict:
    now = utcnow()
    received = (InboundEmail.select().where(InboundEmail.lead == lead.id)
                .order_by(InboundEmail.received_at.desc(), InboundEmail.id.desc()).limit(50))
    return {"received": list(received),"header": header(lead, policy, now),
            "timeline": timeline(lead, before_from(before_value), now, policy),
            "score": score_breakdown(lead, policy, now), "nurture": nurture_section(lead),
            "now": now}
