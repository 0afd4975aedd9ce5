"""The SLA clock. For now a 24x7 window; the business calendar plugs in here."""

from __future__ import annotations

from datetime import datetime, timedelta


def due_at(start: datetime, decision_hours: float) -> datetime:
    return start + timedelta(hours=decision_hours)
