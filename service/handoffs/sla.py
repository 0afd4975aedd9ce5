"""The SLA clock: a team's policy (decision hours, when to remind, escalate and reassign)
and the schedule of a handoff's reminder, deadline, escalation and reassignment, counted
in working time (core/calendar.py). Pure functions of their arguments; time in and out is
aware UTC."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from service.core.calendar import Calendar, calendar_from
from service.core.settings import Settings

# "lapse" stamps the moment a handoff's own deadline passes undecided: a breach of its rep.
ACTIONS = ("remind", "lapse", "escalate", "reassign")


@dataclass(frozen=True)
class Policy:
    decision_hours: float
    remind_at: float
    escalate_at: float
    reassign_at: float
    calendar: Calendar = field(default_factory=Calendar)


@dataclass(frozen=True)
class Schedule:
    due_at: datetime
    remind_at: datetime | None
    escalate_at: datetime | None
    reassign_at: datetime | None

    @property
    def lapse_at(self) -> datetime:
        return self.due_at

    def next_action_at(self, done: set[str]) -> datetime | None:
        """When the next SLA action that has not happened falls due, if any."""
        times = [getattr(self, f"{a}_at") for a in ACTIONS if a not in done]
        times = [t for t in times if t is not None]
        return min(times) if times else None


def schedule(start: datetime, policy: Policy) -> Schedule:
    def at(fraction: float) -> datetime | None:
        if fraction <= 0:
            return None
        return policy.calendar.add(start, policy.decision_hours * fraction)

    return Schedule(due_at=at(1.0) or start, remind_at=at(policy.remind_at),
                    escalate_at=at(policy.escalate_at), reassign_at=at(policy.reassign_at))


def due_actions(sched: Schedule, done: set[str], now: datetime) -> list[str]:
    """The SLA actions due at `now` that have not happened, in order."""
    return [a for a in ACTIONS
            if a not in done and (t := getattr(sched, f"{a}_at")) is not None and t <= now]


def policy_from(values: dict) -> Policy:
    """Build a policy from [sla] values (already merged with a team's overrides)."""
    return Policy(decision_hours=values["decision_hours"], remind_at=values["remind_at"],
                  escalate_at=values["escalate_at"], reassign_at=values["reassign_at"],
                  calendar=calendar_from(values))


def policy_for(settings: Settings, team_name: str | None) -> Policy:
    """The [sla] policy, with the team's overrides from [sla.teams.<name>] when present."""
    return policy_from(settings.sla.for_team(team_name))
