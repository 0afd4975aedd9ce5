"""Which record a signed link still names: links made before links carried public ids
(honoured only for rows from before version 14 and ids never freed), and merged leads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from service.core import links
from service.core.db import utcnow
from service.core.models import Activity, EmailClick, Handoff, SchemaVersion
from service.core.outbox import queue_email
from service.leads.merge import merge_leads
from service.lifecycle import audit
from service.nurture.suppression import is_suppressed
from tests.factories import new_lead, promoted


@pytest.fixture
def upgraded(app, now):
    """A database that reached version 14 at `now`."""
    SchemaVersion.update(applied_at=now).where(SchemaVersion.version == 14).execute()
    return app


def old_unsubscribe(app, lead_id: int) -> str:
    """An unsubscribe link as versions before 14 made it: the lead id alone."""
    token = URLSafeSerializer(app.secret_key, salt=links.UNSUBSCRIBE_SALT).dumps(lead_id)
    return f"/u/{token}"


def test_old_unsubscribe_link_works_for_a_lead_from_before_version_14(upgraded, now):
    lead = new_lead("ada@example.com", at=now - timedelta(days=30))
    client = upgraded.test_client()
    assert "ada@example.com" in client.get(old_unsubscribe(upgraded, lead.id)).text
    answer = client.post(old_unsubscribe(upgraded, lead.id), data="List-Unsubscribe=One-Click",
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200 and is_suppressed(lead.email)


def test_old_unsubscribe_link_names_nobody_created_since(upgraded, now):
    lead = new_lead("bob@example.com", at=now + timedelta(minutes=1))
    client = upgraded.test_client()
    assert client.get(old_unsubscribe(upgraded, lead.id)).status_code == 410
    assert client.post(old_unsubscribe(upgraded, lead.id)).status_code == 410
    assert not is_suppressed(lead.email)


def test_old_unsubscribe_link_to_an_id_once_erased_names_nobody(upgraded, now):
    """Before version 14 an erased lead's id went to the next lead: its old links are
    ambiguous, whoever holds the id now."""
    lead = new_lead("cy@example.com", at=now - timedelta(days=30))
    audit("dpo@example.com", "erase", f"lead:{lead.id}", {}, now - timedelta(days=31))
    client = upgraded.test_client()
    assert client.post(old_unsubscribe(upgraded, lead.id)).status_code == 410
    assert not is_suppressed(lead.email)


def test_old_click_link_only_for_an_email_from_before_version_14(upgraded, now):
    click = URLSafeSerializer(upgraded.secret_key, salt=links.CLICK_SALT)
    client, leads = upgraded.test_client(), {}
    for at, status in ((now - timedelta(days=1), 302), (now + timedelta(minutes=1), 410)):
        lead = leads[status] = new_lead(f"lead{status}@example.com", at=at)
        row = queue_email("nurture/guide", to_address=lead.email, lead_id=lead.id, now=at,
                          to_prospect=True)
        link = f"/c/{click.dumps([row.id, 'https://www.example.com/tour'])}"
        assert client.get(link).status_code == status
    assert EmailClick.select().count() == 1
    assert Activity.get(Activity.type == "email_click").lead_id == leads[302].id


def test_old_decision_link_only_for_a_handoff_older_than_the_link(app, rep):
    """Made before version 14, a decision link carries bare ids: a handoff promoted after it
    was signed, which took the id of an erased one, is not the handoff it was made for."""
    decide = URLSafeTimedSerializer(app.secret_key, salt=links.HANDOFF_SALT)
    client = app.test_client()
    for later, status in ((timedelta(minutes=-10), 200), (timedelta(seconds=2), 410)):
        at = utcnow() + later
        handoff = promoted(rep, f"lead{status}@example.com", at=at)
        page = client.get(f"/h/{decide.dumps([handoff.id, rep.id, 'accept'])}")
        assert page.status_code == status
    assert Handoff.select().where(Handoff.status == "pending").count() == 2


def test_links_of_a_merged_lead_name_the_lead_it_went_into(app, rep, now):
    handoff = promoted(rep, at=now)
    ada = handoff.lead
    token = links.handoff_token(app.secret_key, handoff.id, rep.id, "accept", ada.public_id)
    decision = f"/h/{token}"
    unsubscribe = f"/u/{links.unsubscribe_token(app.secret_key, ada.id, ada.public_id)}"
    bob, cy = new_lead("bob@example.com", at=now), new_lead("cy@example.com", at=now)
    merge_leads(bob.id, ada.id, actor="mia@example.com", now=now)
    merge_leads(cy.id, bob.id, actor="mia@example.com", now=now)
    client = app.test_client()
    page = client.get(decision)
    assert page.status_code == 200 and "cy@example.com" in page.text
    assert client.post(unsubscribe).status_code == 200
    assert is_suppressed("cy@example.com") and not is_suppressed("ada@example.com")
