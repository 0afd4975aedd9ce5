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
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service import events, lifecycle
from service.content import emails as content_emails
from service.content import sequences as content
from service.core import outbox
from service.core.calendar import Calendar, hours_from
from service.core.db import db, lock, transaction
from service.core.errors import InvalidInput
from service.core.fastsql import select_rows
from service.core.models import Enrollment, Handoff, Lead, Suppression
from service.core.settings import Settings
from service.lifecycle import EnrollmentStatus
from service.nurture.suppression import email_hash


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


class Due(NamedTuple):
    """A due enrollment as the sweep reads it, with its lead's address, name and zone."""
    id: int
    sequence: str
    step: int
    last_step_id: str
    lead_id: int
    email: str
    first_name: str
    time_zone: str


def sweep(*, settings: Settings, now: datetime, chunk: int = 1000) -> int:
    """Send every step due at `now`; return how many this call queued. Set-based: a chunk of
    due enrollments costs the same few statements whatever its size (send_chunk)."""
    sent = 0
    while True:
        due = due_chunk(now, chunk)
        if not due:
            return sent
        sent += send_chunk(due, settings=settings, now=now)


def due_chunk(now: datetime, chunk: int) -> list[Due]:
    """The `chunk` active enrollments due longest, through the (status, next_due_at) index."""
    query = (Enrollment.select(Enrollment.id, Enrollment.sequence, Enrollment.step,
                               Enrollment.last_step_id, Lead.id, Lead.email, Lead.first_name,
                               Lead.time_zone)
             .join(Lead).where(Enrollment.status == EnrollmentStatus.ACTIVE,
                               Enrollment.next_due_at <= now)
             .order_by(Enrollment.next_due_at).limit(chunk))
    return [Due(*row) for row in db.execute(query).fetchall()]  # no column to convert


def send_chunk(due: list[Due], *, settings: Settings, now: datetime) -> int:
    """Send the step that follows each enrollment's last one in its sequence's current
    version (next_step), worked out once per (sequence, last step), its following step's
    time once per (step, lead time zone). In one transaction: the suppressed leads' sequences
    stop (one update), the steps are claimed with one conditional update per (email number,
    step, next due time), guarded by the number each enrollment had, so a step is claimed
    once whatever sweeps overlap, and the emails of the steps this call won are written in
    one insert. Overlapping sweeps claim one after the other (a lock for the transaction), so
    their updates never wait on each other's rows in opposite orders. An enrollment with no
    step left finishes. Returns how many it queued."""
    plans = {name: _steps(row) for name, row in content.current_sequences().items()}
    followers = cache(content.followers)  # this chunk's look-ups in the history
    nexts = {(seq, last): next_step(seq, plans.get(seq, []), last, followers)
             for seq, last in {(row.sequence, row.last_step_id) for row in due}}
    plan_of = {row.id: plans.get(row.sequence, []) for row in due}
    index_of = {row.id: nexts[row.sequence, row.last_step_id] for row in due}
    sending = [row for row in due if index_of[row.id] is not None]
    claims = _claims(due, plan_of, index_of, settings, now)
    versions = content_emails.template_versions()
    with transaction():
        lock("nurture sweep")  # PostgreSQL: overlapping sweeps take their rows one at a time
        stopped = _stop_suppressed(sending, now)
        won = set()
        for (number, step_id, next_at), ids in claims.items():
            won |= lifecycle.claim_steps([i for i in ids if i not in stopped], step=number,
                                         next_due_at=next_at, now=now, step_id=step_id)
        emails = [_email(row, plan_of[row.id][index_of[row.id]], versions)
                  for row in sending if row.id in won]
        outbox.queue_emails(emails, now=now)
    return len(emails)


def _claims(due: list[Due], plan_of: dict, index_of: dict, settings: Settings,
            now: datetime) -> dict[tuple, list[int]]:
    """The enrollments to claim grouped by what the claim writes: (the email number they
    stand at, the step they send, when the one after it is due: None finishes them)."""
    calendars: dict[str, Calendar] = {}
    following: dict[tuple, datetime | None] = {}
    claims: dict[tuple, list[int]] = {}
    for row in due:
        plan, index = plan_of[row.id], index_of[row.id]
        key = (row.sequence, index, row.time_zone)
        if key not in following:
            if row.time_zone not in calendars:
                calendars[row.time_zone] = send_calendar(settings, row.time_zone)
            following[key] = (due_time(now, plan[index + 1], calendars[row.time_zone])
                              if index is not None and index + 1 < len(plan) else None)
        step_id = plan[index].id if index is not None else ""
        claims.setdefault((row.step, step_id, following[key]), []).append(row.id)
    return claims


def _stop_suppressed(sending: list[Due], now: datetime) -> set[int]:
    """Stop the sequences of the suppressed leads among these (one query, one update);
    the ids of their enrollments."""
    if not sending:
        return set()
    hashes = {row.id: email_hash(row.email) for row in sending}
    suppressed = {found for found, in select_rows(_suppressed, list(set(hashes.values())))}
    if not suppressed:
        return set()
    stopped = [row for row in sending if hashes[row.id] in suppressed]
    lifecycle.stop_lead_enrollments([row.lead_id for row in stopped], reason="suppressed",
                                    now=now)
    return {row.id for row in stopped}


def _suppressed(hashes: list[str]):
    return Suppression.select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes))


def _email(row: Due, step: Step, versions: dict[str, int]) -> outbox.Email:
    """The step's email, with the versions it uses: a queued or retried one keeps them."""
    return outbox.Email(f"nurture/{step.template}", row.email, to_name=row.first_name,
                        lead_id=row.lead_id, to_prospect=True, enrollment_id=row.id,
                        step=row.step, step_id=step.id,
                        context={"subject": step.subject, "sequence_version": step.version,
                                 "template_version": versions[step.template]})


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
