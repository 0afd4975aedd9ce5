"""Enrollment transitions: a lead in a nurture sequence is active until it completes the
sequence or is stopped (promoted, became an SQL, unsubscribed, suppressed, merged)."""

from __future__ import annotations

from datetime import datetime

from service.core.models import Enrollment


def stop_enrollments(lead_id: int, *, reason: str, now: datetime) -> int:
    return (Enrollment.update(status="stopped", stop_reason=reason, next_due_at=None,
                              updated_at=now)
            .where(Enrollment.lead == lead_id, Enrollment.status == "active").execute())
