"""Enrollment transitions: a lead in a nurture sequence is active until it finishes the
sequence or is stopped (promoted, became an SQL, unsubscribed, suppressed, merged, stopped
by hand, enrolled in another). A finished or stopped enrollment never runs again: a new
sequence is a new enrollment. Each change is a conditional update on the current status."""

from __future__ import annotations

from datetime import datetime

from peewee import Expression, fn

from service.core.db import transaction
from service.core.fastsql import update_returning_ids
from service.core.models import Enrollment
from service.core.statuses import EnrollmentStatus
from service.lifecycle.stages import audit

ACTIVE = EnrollmentStatus.ACTIVE

ENROLLMENT_TRANSITIONS: dict[str, tuple[frozenset, frozenset]] = {
    "enroll": (frozenset({None}), frozenset({ACTIVE})),
    "send_step": (frozenset({ACTIVE}), frozenset({ACTIVE})),
    "finish": (frozenset({ACTIVE}), frozenset({EnrollmentStatus.FINISHED})),
    "stop": (frozenset({ACTIVE}), frozenset({EnrollmentStatus.STOPPED})),
}


def start_enrollment(lead_id: int, sequence: str, *, first_due_at: datetime, now: datetime,
                     actor: str = "") -> Enrollment:
    """(none) → active, stopping the sequence the lead runs (one at a time). An admin's
    enrollment (actor given) is audited."""
    with transaction():
        stop_enrollments(lead_id, reason="re-enrolled", now=now)
        enrollment = Enrollment.create(lead=lead_id, sequence=sequence, step=0, started_at=now,
                                       updated_at=now, next_due_at=first_due_at,
                                       status=_target("enroll"))
        if actor:
            audit(actor, "enroll", f"lead:{lead_id}", {"sequence": sequence}, now)
    return enrollment


def claim_step(enrollment_id: int, *, step: int, next_due_at: datetime | None,
               now: datetime, step_id: str = "") -> bool:
    """Claim the enrollment's email number `step` once, recording the sequence step it
    sends (step_id; "" when it sends none): active → active with the following step due at
    next_due_at, or active → finished after the last step (next_due_at None). False when it
    is no longer active or another sweep claimed the step."""
    transition = "send_step" if next_due_at else "finish"
    sent = {"last_step_id": step_id} if step_id else {}
    return _change(transition, Enrollment.id == enrollment_id, Enrollment.step == step,
                   step=step + 1, next_due_at=next_due_at, updated_at=now,
                   stop_reason="" if next_due_at else "finished", **sent) == 1


def claim_steps(enrollment_ids: list[int], *, step: int, next_due_at: datetime | None,
                now: datetime, step_id: str = "") -> set[int]:
    """claim_step for enrollments standing at the same email number `step`, in one
    conditional update; returns the ids this call claimed (those no longer active, or whose
    step another sweep claimed, are left out)."""
    if not enrollment_ids:
        return set()
    transition = "send_step" if next_due_at else "finish"
    sent = {"last_step_id": step_id} if step_id else {}
    sources = ENROLLMENT_TRANSITIONS[transition][0]
    return set(update_returning_ids(
        Enrollment, {"status": _target(transition), "step": step + 1,
                     "next_due_at": next_due_at, "updated_at": now,
                     "stop_reason": "" if next_due_at else "finished", **sent},
        enrollment_ids, where={"status": next(iter(sources)), "step": step}))


def stop_enrollments(lead_id: int, *, reason: str, now: datetime, actor: str = "") -> int:
    """active → stopped for the lead's sequences; return how many. An admin stopping them
    (actor given) is audited."""
    stopped = _change("stop", Enrollment.lead == lead_id, stop_reason=reason,
                      next_due_at=None, updated_at=now)
    if actor and stopped:
        audit(actor, "stop_enrollments", f"lead:{lead_id}", {"reason": reason,
                                                              "stopped": stopped}, now)
    return stopped


def stop_lead_enrollments(lead_ids: list[int], *, reason: str, now: datetime) -> int:
    """stop_enrollments for many leads in one conditional update; how many stopped."""
    if not lead_ids:
        return 0
    return _change("stop", Enrollment.lead.in_(lead_ids), stop_reason=reason,
                   next_due_at=None, updated_at=now)


def stop_merged_duplicates(merged_id: int, *, survivor_id: int, now: datetime) -> int:
    """active → stopped ("merged") for the merged lead's sequences when the survivor runs
    one of its own: only one sequence runs at a time."""
    survivor_runs = Enrollment.select(Enrollment.id).where(Enrollment.lead == survivor_id,
                                                           Enrollment.status == ACTIVE)
    return _change("stop", Enrollment.lead == merged_id, fn.EXISTS(survivor_runs),
                   stop_reason="merged", next_due_at=None, updated_at=now)


def _change(transition: str, *where: Expression, **fields) -> int:
    """Move the enrollments matched by `where` that stand where the transition starts."""
    sources = ENROLLMENT_TRANSITIONS[transition][0]
    current = (Enrollment.status == next(iter(sources)) if len(sources) == 1
               else Enrollment.status.in_(list(sources)))
    return (Enrollment.update(status=_target(transition), **fields)
            .where(current, *where).execute())


def _target(transition: str) -> EnrollmentStatus:
    return next(iter(ENROLLMENT_TRANSITIONS[transition][1]))
