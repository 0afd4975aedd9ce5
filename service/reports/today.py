"""What needs a marketer's decision today: suggested MQLs with why, re-engaged leads, replies
waiting for a person, overdue handoffs. Each list is the first few rows of an indexed range
(the page links to the full list), so the home page stays fast at any number of leads."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from peewee import JOIN

from service.core.models import (
    Activity,
    Definition,
    Handoff,
    InboundEmail,
    IntegrationKey,
    Lead,
    Rep,
    Team,
    User,
)
from service.core.scores import Policy
from service.core.statuses import HandoffStatus

SHOWN = 5  # rows per section; "see all" opens the list
WHY_ACTIVITIES = 200  # the latest activities read for a lead's why (older ones have decayed)
WHY_TYPES = 3


@dataclass(frozen=True)
class Suggestion:
    lead: Lead
    score: float
    why: list[tuple[str, float]]  # activity type, points left now; the largest first


def suggested(policy: Policy, now: datetime, limit: int = SHOWN) -> list[Suggestion]:
    """The highest-scoring leads (and nurtured leads) at or over the threshold, with the
    activity types that made each score."""
    leads = (Lead.select().where(Lead.stage.in_(("lead", "nurture")),
                                 Lead.score_log >= policy.threshold_log(now))
             .order_by(Lead.score_log.desc()).limit(limit))
    return [Suggestion(lead, policy.score(lead.score_log, now), why(lead.id, policy, now))
            for lead in leads]


def why(lead_id: int, policy: Policy, now: datetime) -> list[tuple[str, float]]:
    """The activity types that contribute most to a lead's score now, with their points."""
    points: dict[str, float] = defaultdict(float)
    latest = (Activity.select(Activity.type, Activity.occurred_at)
              .where(Activity.lead == lead_id)
              .order_by(Activity.occurred_at.desc()).limit(WHY_ACTIVITIES).tuples())
    for kind, at in latest:
        points[kind] += policy.decayed(kind, at, now)
    ranked = sorted(((k, round(p, 1)) for k, p in points.items() if p > 0),
                    key=lambda row: (-row[1], row[0]))
    return ranked[:WHY_TYPES]


def re_engaged(limit: int = SHOWN) -> list[Lead]:
    """Nurtured leads that came back, the latest first (as the Re-engaged list)."""
    return list(Lead.select().where(Lead.re_engaged_at.is_null(False),
                                    Lead.stage == "nurture")
                .order_by(Lead.re_engaged_at.desc()).limit(limit))


def replies_waiting(statuses, limit: int = SHOWN) -> list[InboundEmail]:
    """Received email waiting for a person (held, unmatched), the latest first."""
    return list(InboundEmail.select(
        InboundEmail.id, InboundEmail.received_at, InboundEmail.from_address,
        InboundEmail.from_name, InboundEmail.subject, InboundEmail.status,
        InboundEmail.reason, InboundEmail.lead)
        .where(InboundEmail.status.in_(statuses))
        .order_by(InboundEmail.received_at.desc()).limit(limit))


def managed_reps(email: str):
    """The reps a sales manager manages: by the rep's or their team's manager address."""
    return (Rep.select(Rep.id).join(Team, JOIN.LEFT_OUTER, on=Rep.team == Team.id)
            .where((Rep.manager_email == email) | (Team.manager_email == email)))


def manages_anyone(email: str) -> bool:
    return managed_reps(email).exists()


def overdue_scope(email: str, role: str):
    """Whose handoffs are a user's own (the home page's overdue ones and the lists' "Mine"):
    a marketer's their own promotions, a sales manager's those of the reps they manage (none
    when they manage no one: the home page says how to fix that), an admin's all."""
    if role == "marketer":
        return Handoff.promoted_by == email
    if role == "sales_manager":
        return Handoff.rep.in_(managed_reps(email))
    return role == "admin"


def overdue(email: str, role: str, now: datetime, limit: int = SHOWN) -> list[Handoff]:
    """Pending handoffs past their deadline, the longest overdue first."""
    return list(Handoff.select(Handoff, Lead, Rep).join(Lead).switch(Handoff).join(Rep)
                .where(Handoff.status == HandoffStatus.PENDING, Handoff.due_at < now,
                       overdue_scope(email, role))
                .order_by(Handoff.due_at).limit(limit))


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    endpoint: str  # the panel page where it is done
    done: bool


def first_run() -> list[Step]:
    """The onboarding checklist; each step ticks itself when its condition holds. A form
    counts as connected once a key exists or a first lead has come in (the sample form in
    config.toml is no sign of a connected site)."""
    return [
        Step("reps", "Add your sales reps and their teams", "rep.index_view",
             Rep.select().exists() and Team.select().exists()),
        Step("definition", "Write the MQL definition both teams agree on",
             "definition.index_view", Definition.select().where(
                 Definition.kind == "mql").exists()),
        Step("users", "Invite your colleagues", "user.index_view",
             User.select().where(User.active == True).count() > 1),  # noqa: E712
        Step("connect", "Connect a form or website tracking", "form_snippets.index",
             IntegrationKey.select().exists() or Lead.select().exists()),
    ]
