"""The database layer: ids of deleted rows never come back."""

from __future__ import annotations

from service.core.models import OutboxEmail
from service.leads.gdpr import erase_lead
from tests.factories import promoted


def test_ids_of_an_erased_lead_never_come_back(app, rep, now, tmp_path):
    erased = promoted(rep, "ada@example.com", at=now)
    erased_email = OutboxEmail.get(OutboxEmail.handoff == erased.id)
    erase_lead(erased.lead_id, actor="dpo@example.com", data_dir=tmp_path, now=now)
    after = promoted(rep, "bob@example.com", at=now)
    assert after.lead_id > erased.lead_id
    assert after.id > erased.id
    assert OutboxEmail.get(OutboxEmail.handoff == after.id).id > erased_email.id
