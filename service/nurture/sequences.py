"""Nurture sequences: enrollment, the schedule of steps inside send hours, and the sweep that
sends due steps through the outbox, each step claimed once by a conditional update. The steps
are the current version of the sequence (service.content, edited in the panel); each email
queued records the versions it uses, so a queued or retried one keeps its content. A lead goes
on after the step it last received, found by the step's id (next_step): an edit that adds,
removes or moves steps never makes it receive one again or skip one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service import events, lifecycle
from service.content import emails as content_emails
from service.content import sequences as content
from service.core import outbox
from service.core.calendar import Calendar, hours_from
from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.models import Enrollment, Handoff, Lead
from service.core.settings import Settings
from service.lifecycle import EnrollmentStatus
from service.nurture.suppression import is_suppressed


@dataclass(frozen=True)
class Step:
    delay_days: int
    business_days: bool
    template: str
    subject: str
    version: int = 0  # of the sequence it belongs to
    id: str = ""  # kept by the step through every version


def steps(settings: Settings, sequence: str) -> list[Step]:
    """The current version's steps (settings: kept for callers; the sequences are content)."""
    row = content.current_sequence(sequence)
    if row is None:
        raise InvalidInput(f"no nurture sequence named {sequence!r}")
    return _steps(row)


def _steps(row) -> list[Step]:
    return [Step(s["delay_days"], bool(s["business_days"]), s["template"], s["subject"],
                 row.version, s["id"]) for s in content.steps_of(row)]


def next_step(sequence: str, plan: list[Step], last_id: str,
              followers: Callable[[str, str], list[str]] = content.followers) -> int | None:
    """Where in the current version (plan) an enrollment goes on, after the step it last
    received (last_id; "" before the first): the step after that one. When that step has
    been removed since, the first of the steps that followed it (where it stood) that is still
    there; None when there is none: the enrollment finishes."""
    ids = [step.id for step in plan]
    if not last_id:
        return 0 if plan else None
    if last_id in ids:
        index = ids.index(last_id) + 1
        return index if index < len(plan) else None
    return next((ids.index(i) for i in followers(sequence, last_id) if i in ids), None)


def has_sequence(name: str) -> bool:
    return content.current_sequence(name) is not None


def send_calendar(settings: Settings, zone: str = "") -> Calendar:
    """Send hours in the lead's time zone when it is known and valid, else the default."""
    opens, closes = hours_from(settings.nurture.send_hours, "nurture.send_hours")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ""
    return Calendar(always_open=False, zone=zone or settings.nurture.time_zone,
                    days=tuple(settings.nurture.send_days),
                    opens=opens, closes=closes)


def due_time(after: datetime, step: Step, calendar: Calendar) -> datetime:
    """When a step goes out: its delay after `after`, moved into send hours."""
    return calendar.open_at(calendar.add_days(after, step.delay_days,
                                              business=step.business_days))


def enroll(lead_id: int, sequence: str, *, settings: Settings, now: datetime,
           actor: str = "") -> Enrollment:
    """Start the sequence (a lead is in at most one at a time); actor: the admin doing it."""
    plan = steps(settings, sequence)
    lead = Lead.get_or_none(Lead.id == lead_id)
    if lead is None:
        raise InvalidInput(f"lead {lead_id} not found")
    return lifecycle.start_enrollment(
        lead_id, sequence, now=now, actor=actor,
        first_due_at=due_time(now, plan[0], send_calendar(settings, lead.time_zone)))


def sweep(*, settings: Settings, now: datetime, chunk: int = 1000) -> int:
    """Send every step due at `now`; return how many this call queued."""
    sent = 0
    while True:
        due = list(Enrollment.select(Enrollment, Lead.id, Lead.email, Lead.time_zone,
                                     Lead.first_name)
                   .join(Lead).where(Enrollment.status == EnrollmentStatus.ACTIVE,
                                     Enrollment.next_due_at <= now)
                   .order_by(Enrollment.next_due_at).limit(chunk))
        if not due:
            return sent
        plans = {name: _steps(row) for name, row in content.current_sequences().items()}
        versions = content_emails.template_versions()
        followers = cache(content.followers)  # this chunk's look-ups in the history
        with transaction():
            sent += sum(_send_step(enrollment, plans.get(enrollment.sequence, []), versions,
                                   settings, now, followers) for enrollment in due)


def _send_step(enrollment: Enrollment, plan: list[Step], versions: dict[str, int],
               settings: Settings, now: datetime,
               followers: Callable[[str, str], list[str]]) -> int:
    """Send the step that follows the enrollment's last one in the sequence's current
    version (next_step); an enrollment with no step left finishes."""
    number, lead = enrollment.step, enrollment.lead
    index = next_step(enrollment.sequence, plan, enrollment.last_step_id, followers)
    if index is None:
        lifecycle.claim_step(enrollment.id, step=number, next_due_at=None, now=now)
        return 0
    following = index + 1 < len(plan)
    next_at = (due_time(now, plan[index + 1], send_calendar(settings, lead.time_zone))
               if following else None)
    if not lifecycle.claim_step(enrollment.id, step=number, next_due_at=next_at, now=now,
                                step_id=plan[index].id):
        return 0
    if is_suppressed(lead.email):
        lifecycle.stop_enrollments(lead.id, reason="suppressed", now=now)
        return 0
    outbox.queue_email(f"nurture/{plan[index].template}", to_address=lead.email,
                       to_name=lead.first_name, lead_id=lead.id, now=now, to_prospect=True,
                       enrollment_id=enrollment.id, step=number, step_id=plan[index].id,
                       context={"subject": plan[index].subject,
                                "sequence_version": plan[index].version,
                                "template_version": versions[plan[index].template]})
    return 1


def actively_enrolled(lead_ids: list[int]) -> list[int]:
    """Those of the leads in an active sequence."""
    return [row.lead_id for row in Enrollment.select(Enrollment.lead).where(
        Enrollment.lead.in_(lead_ids), Enrollment.status == EnrollmentStatus.ACTIVE)]


def reengage(lead_ids: list[int], *, settings: Settings, now: datetime) -> list[int]:
    """Leads in an active sequence that showed intent again: mark them and tell marketing
    (with nurture.auto_repromote, intake promotes them instead). Returns the leads marked."""
    marked = []
    for lead_id in actively_enrolled(lead_ids):
        with transaction():
            if not Lead.update(re_engaged_at=now).where(Lead.id == lead_id).execute():
                continue
            events.emit("lead.reengaged", lead_id, now=now)
            for address in marketers_of(lead_id, settings):
                outbox.queue_email("lead_reengaged", to_address=address, lead_id=lead_id,
                                   now=now)
        marked.append(lead_id)
    return marked


def marketers_of(lead_id: int, settings: Settings) -> list[str]:
    """Who hears about a lead for marketing: its last promoter (when a person) and
    nurture.notify."""
    last = (Handoff.select(Handoff.promoted_by).where(Handoff.lead == lead_id)
            .order_by(Handoff.id.desc()).first())
    people = [last.promoted_by] if last and "@" in last.promoted_by else []
    return sorted(set(people + list(settings.nurture.notify)))
