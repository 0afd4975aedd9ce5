"""Every state machine, and the only code that changes a state: lead stages (stages.py),
handoff statuses (handoffs.py), nurture enrollments (enrollments.py), each with its table
of allowed transitions. Each transition is one function, one transaction, a conditional
update on the state the table starts it from (for a lead or a handoff it must touch exactly
one row), and a history or audit row (an enrollment keeps its stop reason and time). The
status words are defined in service.core.statuses, where the tables and the reports can
name them too. Callers use the names below: `lifecycle.promote(…)`,
`lifecycle.HandoffStatus.PENDING`."""

from service.core.statuses import EnrollmentStatus, HandoffStatus
from service.lifecycle.enrollments import (
    ENROLLMENT_TRANSITIONS,
    claim_step,
    claim_steps,
    start_enrollment,
    stop_enrollments,
    stop_lead_enrollments,
    stop_merged_duplicates,
)
from service.lifecycle.handoffs import (
    BANT,
    HANDOFF_TRANSITIONS,
    accept,
    already_decided_message,
    check_bant,
    promote,
    reassign,
    register_outbound,
    reject,
    take_over,
    withdraw,
)
from service.lifecycle.stages import (
    TRANSITIONS,
    Stage,
    audit,
    capture_many,
    recycle,
    reopen,
    win,
)

__all__ = ["BANT", "ENROLLMENT_TRANSITIONS", "HANDOFF_TRANSITIONS", "TRANSITIONS",
           "EnrollmentStatus", "HandoffStatus", "Stage", "accept",
           "already_decided_message", "audit", "capture_many", "check_bant",
           "claim_step", "claim_steps", "promote", "reassign", "recycle", "register_outbound",
           "reject", "reopen", "start_enrollment", "stop_enrollments", "stop_lead_enrollments",
           "stop_merged_duplicates", "take_over", "win", "withdraw"]
