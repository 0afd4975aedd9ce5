"""Marking a day dirty is written last in its transaction: every recorder, decision and
capture marks today, and a mark taken early held that row while the transaction went on to
lock leads, which on PostgreSQL deadlocked against a transaction locking them the other
way round."""

from __future__ import annotations

import threading
from datetime import date

from service.core.db import transaction
from service.core.models import DirtyDay, Lead
from service.reports.rollups import mark_dirty
from tests.factories import at_once, new_lead

DAY = date(2026, 11, 28)


def test_two_transactions_marking_today_and_updating_a_lead_in_turn_both_commit(app, now):
    lead = new_lead("ada@example.com", at=now)
    marked, updated = threading.Event(), threading.Event()

    def marks_then_updates() -> None:
        with transaction():
            mark_dirty(DAY)
            marked.set()
            updated.wait(2)  # the other holds the lead (PostgreSQL; SQLite's writer waits)
            Lead.update(first_name="First").where(Lead.id == lead.id).execute()

    def updates_then_marks() -> None:
        marked.wait(5)
        with transaction():
            Lead.update(first_name="Second").where(Lead.id == lead.id).execute()
            updated.set()
            threading.Event().wait(0.3)  # the first is now waiting for the lead
            mark_dirty(DAY)

    results = at_once(lambda i: (marks_then_updates, updates_then_marks)[i](), 2,
                      database=True)
    assert results == [None, None]
    assert DirtyDay.get(DirtyDay.day == DAY).version == 2
    assert Lead.get_by_id(lead.id).first_name in ("First", "Second")


def test_a_day_marked_twice_in_one_transaction_is_one_write(app):
    with transaction():
        mark_dirty(DAY, None, DAY)
        mark_dirty(DAY)
        assert DirtyDay.select().count() == 0  # not before the end of the transaction
    assert [(d.day, d.version) for d in DirtyDay.select()] == [(DAY, 1)]
    mark_dirty(DAY)  # outside a transaction: at once
    assert DirtyDay.get(DirtyDay.day == DAY).version == 2
