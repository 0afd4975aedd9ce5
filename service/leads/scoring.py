"""Scores with exponential decay, kept in log form so they never need rescanning.

Every activity's points halve every `half_life` days, so all of a lead's points decay at the
same rate. A lead therefore stores one number, score_log = log2(Σ pointsᵢ · 2^(tᵢ/h)), with
times in days since EPOCH. The score at any moment is 2^(score_log − now/h); ordering by
score_log is ordering by score, and "score ≥ threshold" is the indexed range
score_log ≥ log2(threshold) + now/h."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a pure module: the model is only its argument's type
    from service.core.settings import Settings

from service.core.db import transaction
from service.core.models import Activity, Lead

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Policy:
    points: dict[str, float]
    half_life_days: float
    threshold: float
    auto_promote: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(points=settings.scoring.points,
                   half_life_days=settings.scoring.half_life_days,
                   threshold=settings.scoring.suggest_threshold,
                   auto_promote=settings.scoring.auto_promote)

    def half_lives(self, at: datetime) -> float:
        return (at - EPOCH).total_seconds() / 86400 / self.half_life_days

    def term(self, activity_type: str, at: datetime) -> float | None:
        """The log-form contribution of one activity, None when it scores nothing."""
        points = self.points.get(activity_type, 0)
        return math.log2(points) + self.half_lives(at) if points > 0 else None

    def score(self, score_log: float | None, now: datetime) -> float:
        return 0.0 if score_log is None else 2 ** (score_log - self.half_lives(now))

    def threshold_log(self, now: datetime) -> float:
        return math.log2(self.threshold) + self.half_lives(now)

    def decayed(self, activity_type: str, at: datetime, now: datetime) -> float:
        points = self.points.get(activity_type, 0)
        return points * 2 ** (-(now - at).total_seconds() / 86400 / self.half_life_days)


def add_logs(a: float | None, b: float | None) -> float | None:
    """log2(2^a + 2^b) without overflow."""
    if a is None or b is None:
        return b if a is None else a
    high, low = max(a, b), min(a, b)
    return high + math.log2(1 + 2 ** (low - high))


def breakdown(activities, policy: Policy, now: datetime) -> list[dict]:
    """Per activity: its type, when, full points and points left after decay."""
    return [{"activity": a, "type": a.type, "at": a.occurred_at,
             "points": policy.points.get(a.type, 0),
             "now": round(policy.decayed(a.type, a.occurred_at, now), 2)}
            for a in activities]


def suggested(policy: Policy, now: datetime):
    """Leads at or over the threshold that marketing could promote: an indexed range scan."""
    return (Lead.select().where(Lead.stage.in_(("lead", "nurture")),
                                Lead.score_log >= policy.threshold_log(now))
            .order_by(Lead.score_log.desc()))


def rescore_all(policy: Policy, *, now: datetime, chunk: int = 1000) -> int:
    """Recompute score_log for every lead from its activities, a chunk of leads at a time."""
    done, last_id = 0, 0
    while True:
        ids = [row.id for row in Lead.select(Lead.id).where(Lead.id > last_id)
               .order_by(Lead.id).limit(chunk)]
        if not ids:
            return done
        logs: dict[int, float | None] = dict.fromkeys(ids)
        for activity in Activity.select(Activity.lead, Activity.type, Activity.occurred_at) \
                .where(Activity.lead.in_(ids)):
            logs[activity.lead_id] = add_logs(logs[activity.lead_id],
                                              policy.term(activity.type, activity.occurred_at))
        with transaction():
            for lead_id, value in logs.items():
                Lead.update(score_log=value).where(Lead.id == lead_id).execute()
        done, last_id = done + len(ids), ids[-1]
