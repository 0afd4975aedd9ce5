"""The nurture sweep works a chunk of due enrollments with set-based statements: as many
statements for 50 due steps as for 5, each step claimed once by overlapping sweeps, the next
due time in each lead's own time zone, suppressed leads stopped, finished sequences
finished; and outbox.queue_emails writes the rows queue_email would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service import lifecycle
from service.core import outbox
from service.core.db import transaction
from service.core.models import Enrollment, Lead, OutboxEmail, Suppression
from service.core.runtime import runtime
from service.nurture import sequences as nurture
from service.nurture.suppression import email_hash
from tests.conftest import queued_job_ids
from tests.factories import at_once, statements_run

WEDNESDAY = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 09:00 in London, inside send hours
TRIO = {"steps": [
    {"delay_days": 2, "business_days": True, "template": "checkin", "subject": "Checking in"},
    {"delay_days": 7, "template": "guide", "subject": "A guide"},
    {"delay_days": 14, "template": "last_call", "subject": "Last call"}]}
ZONES = ("", "America/New_York", "Asia/Tokyo", "Not/AZone")


@pytest.fixture
def nurture_app(make_app):
    return make_app(**{"nurture.sequences": {"default": TRIO},
                       "nurture.time_zone": "Europe/London",
                       "nurture.send_hours": "09:00-17:00"})


def due_enrollments(count: int, *, at: datetime = WEDNESDAY, zones=ZONES,
                    prefix: str = "p") -> list[Enrollment]:
    """`count` leads, their time zones taken in turn from `zones`, each enrolled with its
    first step due at `at`."""
    start = Lead.select().count()
    emails = [f"{prefix}{start + i}@example.com" for i in range(count)]
    lifecycle.capture_many([{"email": email, "first_name": f"Pat{i}",
                             "time_zone": zones[i % len(zones)]}
                            for i, email in enumerate(emails)],
                           source="t", actor="t", now=at - timedelta(days=3))
    leads = Lead.select().where(Lead.email.in_(emails)).order_by(Lead.id)
    return [lifecycle.start_enrollment(lead.id, "default", first_due_at=at, now=at)
            for lead in leads]


def sweep_at(now: datetime, chunk: int = 1000) -> int:
    return nurture.sweep(settings=runtime.settings, now=now, chunk=chunk)


def test_a_chunk_runs_as_many_statements_for_50_due_steps_as_for_5(nurture_app):
    due_enrollments(5)
    few = len(statements_run(lambda: sweep_at(WEDNESDAY)))
    assert OutboxEmail.select().count() == 5
    later = WEDNESDAY + timedelta(days=1)
    due_enrollments(50, at=later)
    many = len(statements_run(lambda: sweep_at(later)))
    assert OutboxEmail.select().count() == 55
    assert many == few


def test_overlapping_sweeps_claim_each_step_once(nurture_app):
    enrollments = due_enrollments(120)
    queued = at_once(lambda i: sweep_at(WEDNESDAY, chunk=[1000, 7, 30, 1000][i]), 4,
                     database=True)
    assert not [result for result in queued if isinstance(result, Exception)], queued
    assert sum(queued) == 120
    rows = list(OutboxEmail.select(OutboxEmail.enrollment, OutboxEmail.step_id))
    assert sorted(row.enrollment for row in rows) == sorted(e.id for e in enrollments)
    assert {row.step_id for row in rows} == {"s1"}
    assert {e.step for e in Enrollment.select()} == {1}
    assert sweep_at(WEDNESDAY) == 0


def test_mixed_zones_in_one_chunk_get_their_own_next_due_time(nurture_app):
    """The second step comes 7 days after the first, moved into 09:00-17:00 of the lead's
    zone (London when it has none or an unknown one)."""
    enrollments = due_enrollments(8)
    assert sweep_at(WEDNESDAY) == 8
    next_week = WEDNESDAY + timedelta(days=7)
    expected = {"": next_week,  # 09:00 London, open
                "America/New_York": next_week + timedelta(hours=5),  # 04:00 there → 09:00
                "Asia/Tokyo": next_week + timedelta(hours=15),  # 18:00 there → Thu 09:00
                "Not/AZone": next_week}
    for enrollment in Enrollment.select().join(Lead).where(
            Enrollment.id.in_([e.id for e in enrollments])):
        assert enrollment.next_due_at == expected[enrollment.lead.time_zone], (
            enrollment.lead.time_zone)
        assert (enrollment.status, enrollment.step, enrollment.last_step_id) == (
            "active", 1, "s1")


def test_suppressed_leads_are_stopped_and_get_nothing(nurture_app):
    enrollments = due_enrollments(6)
    leads = {e.id: Lead.get_by_id(e.lead_id) for e in enrollments}
    suppressed = [e.id for e in enrollments[::2]]
    for enrollment_id in suppressed:  # listed without the sequence being stopped yet
        Suppression.create(email_hash=email_hash(leads[enrollment_id].email.upper()),
                           reason="bounce", source="t", at=WEDNESDAY)
    assert sweep_at(WEDNESDAY) == 3
    for enrollment in Enrollment.select():
        if enrollment.id in suppressed:
            assert (enrollment.status, enrollment.stop_reason, enrollment.next_due_at) == (
                "stopped", "suppressed", None)
        else:
            assert (enrollment.status, enrollment.step) == ("active", 1)
    assert {row.enrollment for row in OutboxEmail.select()} == {
        e.id for e in enrollments} - set(suppressed)


def test_the_last_step_finishes_and_an_enrollment_with_none_left_finishes_without_mail(
        nurture_app):
    last, past_the_end, running = due_enrollments(3)
    Enrollment.update(step=2, last_step_id="s2").where(Enrollment.id == last.id).execute()
    Enrollment.update(step=3, last_step_id="s3").where(
        Enrollment.id == past_the_end.id).execute()
    assert sweep_at(WEDNESDAY) == 2
    rows = {row.enrollment: row for row in OutboxEmail.select()}
    assert set(rows) == {last.id, running.id}
    assert (rows[last.id].step, rows[last.id].step_id, rows[last.id].context["subject"]) == (
        2, "s3", "Last call")
    for enrollment, step in ((last, 3), (past_the_end, 4)):
        done = Enrollment.get_by_id(enrollment.id)
        assert (done.status, done.stop_reason, done.step, done.next_due_at) == (
            "finished", "finished", step, None)
    assert Enrollment.get_by_id(running.id).status == "active"
    assert sweep_at(WEDNESDAY + timedelta(days=90)) == 1  # running's second step, alone


def test_queue_emails_writes_the_rows_queue_email_writes(nurture_app):
    lead = due_enrollments(1)[0].lead
    arguments = dict(to_address="ada@example.com", to_name="Ada", lead_id=lead.id,
                     context={"subject": "Hi", "sequence_version": 2}, to_prospect=True,
                     enrollment_id=7, step=1, step_id="s2")
    with transaction():
        one = outbox.queue_email("nurture/guide", now=WEDNESDAY, **arguments).id
        many = outbox.queue_emails([outbox.Email("nurture/guide", **arguments),
                                    outbox.Email("rep_morning", "rep@demo.example")],
                                   now=WEDNESDAY)
    assert len(many) == 2 and one not in many
    rows = {row["id"]: row for row in OutboxEmail.select().dicts()}

    def same(row):
        return {k: v for k, v in row.items() if k not in ("id", "message_id")}
    bulk, demo = (rows[i] for i in sorted(many, key=lambda i: rows[i]["template"]))
    assert same(bulk) == same(rows[one])
    assert bulk["message_id"] != rows[one]["message_id"]
    assert (demo["skip_reason"], demo["skipped_at"]) == (outbox.DEMO_SKIP, WEDNESDAY)
    assert queued_job_ids() == [f"send-emails-{one}-2"]  # the two, not the demo address
