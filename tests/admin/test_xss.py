"""Stored XSS: whatever a lead typed is shown as text in every list, detail page, form and
chart label of the panel."""

from __future__ import annotations

from datetime import timedelta

from service import lifecycle
from service.accounts.users import create_user
from service.core.db import utcnow
from service.core.models import Lead, OutboxEmail
from service.core.runtime import runtime
from service.intake.activity import ingest
from service.intake.event import Event
from tests.conftest import PASSWORD, log_in
from tests.factories import enrolled, promoted

SCRIPT = "<script>alert('xss')</script>"
IMG = '<img src=x onerror="alert(1)">'


def test_lead_input_is_text_everywhere(app, rep):
    now = utcnow()
    fields = {"first_name": SCRIPT, "last_name": IMG, "company": SCRIPT, "title": IMG,
              "country": "<b>GB</b>", "industry": IMG}
    ingest([Event(type="pricing_page_view", occurred_at=now, email="evil@example.com",
                  fields=fields, properties={"note": SCRIPT}, raw={"x": IMG}),
            Event(type="contact_sales", occurred_at=now, email="evil@example.com")],
           source=f"form:{SCRIPT}", settings=runtime.settings, now=now)
    lead = Lead.get()
    handoff = promoted(rep, lead, at=now - timedelta(hours=30), note=SCRIPT)
    lifecycle.reject(handoff.id, reason="not_ready", outcome="nurture:default", notes=IMG,
                     actor="r", now=now)
    enrolled(lead, at=now)
    Lead.update(re_engaged_at=now).execute()
    create_user("root@example.com", role="admin", password=PASSWORD, now=now)
    client = app.test_client()
    log_in(client, "root@example.com")
    email = OutboxEmail.select().first()
    pages = ["/admin/", "/admin/?period=day", "/admin/lead/", f"/admin/lead/details/?id={lead.id}",
             f"/admin/lead/edit/?id={lead.id}", f"/admin/lead/promote/?ids={lead.id}",
             "/admin/suggested/", "/admin/reengaged/", "/admin/handoff/",
             f"/admin/handoff/details/?id={handoff.id}", "/admin/enrollment/",
             "/admin/outbox/", f"/admin/outbox/details/?id={email.id}",
             f"/admin/outbox/preview/{email.id}", "/admin/audit/",
             f"/admin/lead/enroll/?ids={lead.id}"]
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        assert SCRIPT not in page.text and IMG not in page.text, path
        assert "<b>GB</b>" not in page.text, path
    dashboard = client.get("/admin/").text
    assert "form:&lt;script&gt;" in dashboard, "the source label is there, as text"
    csv = client.get("/admin/report.csv?chart=sources").text
    assert f"form:{SCRIPT}" in csv, "CSV carries the raw value (it is not HTML)"
