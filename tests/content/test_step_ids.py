"""A sequence's steps keep their ids through every version, and an enrolled lead goes on after
the step it last received: a step inserted before it is never sent to it, a step removed is
neither sent again nor makes it skip one; the sequences page counts by step."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from service.accounts.users import create_user
from service.content import sequences as content_sequences
from service.content import store
from service.core.db import db, utcnow
from service.core.models import ContentVersion, Enrollment, OutboxEmail, SchemaVersion
from service.core.runtime import runtime
from service.handoffs.actions import reject_handoff
from service.nurture import sequences as nurture
from service.ops.migrations import migrate
from tests.conftest import PASSWORD, csrf_token, log_in, run_worker
from tests.content.forms import hidden_fields
from tests.factories import promoted

FRIDAY = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
A, B, C = ("Ada, anything we can help with?", "A guide you may find useful",
           "Shall we stay in touch?")
NEW = {"delay_days": 1, "business_days": False, "template": "guide",
       "subject": "Welcome (a new first step)"}


def nurture_subjects(smtp) -> list[str]:
    return [m["Subject"] for m in smtp.messages if m["List-Unsubscribe"]]


def send_due(clock) -> None:
    due = Enrollment.get().next_due_at
    clock.move_to(due)
    nurture.sweep(settings=runtime.settings, now=due)
    run_worker()


def enrolled(rep, clock) -> None:
    handoff = promoted(rep, "ada@example.com", at=FRIDAY, fields={"first_name": "Ada"})
    reject_handoff(handoff.id, reason="not_ready", notes="", actor=rep.email,
                   settings=runtime.settings, now=FRIDAY)


def save(steps: list[dict]) -> None:
    content_sequences.save_sequence("default", steps, author="mia@example.com", now=utcnow())


def current_steps() -> list[dict]:
    return content_sequences.steps_of(content_sequences.current_sequence("default"))


def test_a_step_inserted_before_the_one_received_is_not_sent_and_none_is_sent_twice(app, rep,
                                                                                   smtp):
    with time_machine.travel(FRIDAY, tick=False) as clock:
        enrolled(rep, clock)
        send_due(clock)
        assert nurture_subjects(smtp) == [A]
        first, second, third = current_steps()
        save([NEW, first, second, third])
        steps = current_steps()
        assert [s["id"] for s in steps[1:]] == [first["id"], second["id"], third["id"]]
        assert steps[0]["id"] not in {first["id"], second["id"], third["id"]}
        send_due(clock)
        send_due(clock)
    assert nurture_subjects(smtp) == [A, B, C]
    assert Enrollment.get().status == "finished"
    assert [r.step_id for r in OutboxEmail.select().where(OutboxEmail.to_prospect)
            .order_by(OutboxEmail.id)] == [
        first["id"], second["id"], third["id"]]


@pytest.mark.parametrize(("removed", "expected"), [
    (0, [A, B, C]),  # the step received is removed: go on with the one after it
    (1, [A, C]),  # the next one is removed: the one after it
    (2, [A, B]),  # the last one is removed: finish after B
])
def test_removing_a_step_neither_repeats_nor_skips_one(app, rep, smtp, removed, expected):
    with time_machine.travel(FRIDAY, tick=False) as clock:
        enrolled(rep, clock)
        send_due(clock)
        steps = current_steps()
        save(steps[:removed] + steps[removed + 1:])
        while Enrollment.get().status == "active":
            send_due(clock)
    assert nurture_subjects(smtp) == expected
    assert Enrollment.get().stop_reason == "finished"


def test_a_removed_step_with_new_ones_around_it_goes_on_with_a_follower_still_there(
        app, rep, smtp):
    with time_machine.travel(FRIDAY, tick=False) as clock:
        enrolled(rep, clock)
        send_due(clock)
        first, second, third = current_steps()
        save([first, second, third, {**NEW, "subject": "An extra at the end"}])
        save([{**NEW, "subject": "Replaces the first"}, second, third,
              current_steps()[3]])
        send_due(clock)
        send_due(clock)
        send_due(clock)
    assert nurture_subjects(smtp) == [A, B, C, "An extra at the end"]


def test_steps_edited_in_the_panel_keep_their_ids_and_their_counts(app, rep, smtp, now):
    create_user("mia@example.com", role="marketer", password=PASSWORD, now=now)
    client = app.test_client()
    assert log_in(client, "mia@example.com").status_code == 302
    with time_machine.travel(FRIDAY, tick=False) as clock:
        enrolled(rep, clock)
        send_due(clock)
    ids = [s["id"] for s in current_steps()]
    page = client.get("/admin/sequences/edit/default").text
    fields = hidden_fields(page)
    assert [fields[f"steps-{i}-step_id"] for i in range(3)] == ids
    fields.update({"steps-0-delay_days": "3", "steps-0-template": "checkin",
                   "steps-0-subject": "Edited first", "steps-1-delay_days": "14",
                   "steps-1-template": "guide", "steps-1-subject": B, "steps-1-remove": "y",
                   "steps-2-delay_days": "30", "steps-2-template": "last_call",
                   "steps-2-subject": C, "steps-3-delay_days": "2",
                   "steps-3-template": "guide", "steps-3-subject": "Added",
                   "csrf_token": csrf_token(page)})
    assert client.post("/admin/sequences/edit/default", data=fields).status_code == 302
    steps = current_steps()
    assert [s["id"] for s in steps[:2]] == [ids[0], ids[2]] and steps[2]["id"] not in ids
    # the panel's counts: the step sent is the first row still (its id), not by position
    save([NEW, *current_steps()])
    page = client.get("/admin/sequences/").text
    rows = page[page.index("<tbody>"):page.index("</tbody>")].split("<tr>")[1:]
    sent = [row.split('class="text-right">')[1].split("<")[0] for row in rows]
    assert sent == ["0", "1", "0", "0"]


def test_the_upgrade_gives_enrollments_the_step_they_last_received(app, rep, smtp):
    """A version saved before steps had ids reads as s1, s2, …; migration 23 records each
    enrollment's last step by its position, so the sweep goes on where it stood."""
    with time_machine.travel(FRIDAY, tick=False) as clock:
        enrolled(rep, clock)
        send_due(clock)
        latest = content_sequences.current_sequence("default")
        ContentVersion.create(kind=store.SEQUENCE, key="default", version=latest.version + 1,
                              author="mia@example.com", created_at=utcnow(), data={"steps": [
                                  {k: v for k, v in s.items() if k != "id"}
                                  for s in latest.data["steps"]]})
        db.execute_sql('ALTER TABLE "enrollment" DROP COLUMN "last_step_id"')
        db.execute_sql('ALTER TABLE "outbox_email" DROP COLUMN "step_id"')
        SchemaVersion.delete().where(SchemaVersion.version == 23).execute()
        assert migrate() == ["0023 nurture: steps keep an id; enrollments go on after the "
                             "last step they sent"]
        assert Enrollment.get().last_step_id == "s1"
        assert OutboxEmail.get(OutboxEmail.to_prospect).step_id == "s1"
        send_due(clock)
    assert nurture_subjects(smtp) == [A, B]
