"""A recording transaction PostgreSQL aborts as a deadlock is tried again, so two recorders
that lock the same leads in opposite orders both finish (on SQLite, one writer at a time,
both finish too)."""

from __future__ import annotations

import threading

from service.core.db import transaction
from service.core.models import Lead
from service.intake.activity import _retried
from tests.factories import at_once, new_lead


def test_two_transactions_that_deadlock_both_finish_when_retried(app, now):
    ada, bob = new_lead("ada@example.com", at=now), new_lead("bob@example.com", at=now)
    first_locked, tries = threading.Barrier(2, timeout=1), []

    def rename(i: int) -> None:
        order = (ada, bob) if i == 0 else (bob, ada)

        def attempt() -> None:
            tries.append(i)
            with transaction():
                Lead.update(company=f"by {i}").where(Lead.id == order[0].id).execute()
                if len(tries) <= 2:  # the first attempts meet, each holding one lead
                    try:
                        first_locked.wait()
                    except threading.BrokenBarrierError:
                        pass  # SQLite: the other waits for the one writer
                Lead.update(company=f"by {i}").where(Lead.id == order[1].id).execute()

        _retried(attempt)

    assert at_once(rename, 2, database=True) == [None, None]
    companies = {lead.company for lead in Lead.select()}
    assert len(companies) == 1 and companies <= {"by 0", "by 1"}
