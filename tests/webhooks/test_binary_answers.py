"""An answer's body is kept as text the database can store: a binary body (NUL bytes in
it) is recorded once, on SQLite and on PostgreSQL, never lost to an unrecordable outcome
(which would leave the claim to lapse and the delivery to go again)."""

from __future__ import annotations

import pytest

from service.core.db import utcnow
from service.core.models import WebhookDelivery
from tests.conftest import run_worker
from tests.factories import promoted
from tests.webhooks.conftest import endpoint_to

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR binary\x00end"


@pytest.mark.parametrize(("status", "outcome"), [(200, "delivered"), (500, "pending")])
def test_a_binary_body_is_recorded_once(app, rep, receiver, status, outcome):
    endpoint_to(receiver, event_types=["lead.mql"])
    receiver.status, receiver.reply = status, BINARY
    promoted(rep, at=utcnow())
    run_worker()
    [row] = WebhookDelivery.select()
    assert row.status == outcome and row.attempts == 1 and row.claimed_at is None
    assert row.last_status_code == status
    assert "\x00" not in row.response_excerpt
    assert "IHDR binary" in row.response_excerpt and row.response_excerpt.endswith("end")
    assert len(receiver.requests) == 1
