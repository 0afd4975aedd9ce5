"""Scores with exponential decay, kept in log form so they never need rescanning.

Every activity's points halve every `half_life` days, so all of a lead's points decay at the
same rate. A lead therefore stores one number, score_log = log2(Σ pointsᵢ · 2^(tᵢ/h)), with
times in days since EPOCH. The score at any moment is 2^(score_log − now/h); ordering by
score_log is ordering by score, and "score ≥ threshold" is the indexed range
score_log ≥ log2(threshold) + now/h. Pure arithmetic: every layer may read a score."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.core.settings import Settings

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
