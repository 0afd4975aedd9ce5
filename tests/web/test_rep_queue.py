"""The rep's queue without a login: the link in every rep email opens a page of that rep's
pending handoffs, each with Accept and Reject; GET changes nothing; the link expires and is
revoked by a manager or by deactivating the rep."""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import time_machine
from itsdangerous import URLSafeTimedSerializer

from admin.guard import inert_links
from service import lifecycle
from service.accounts.users import create_user
from service.core import links, logs
from service.core.models import (
    AuditEvent,
    Handoff,
    HandoffMessage,
    Lead,
    OutboxEmail,
    Rep,
    StageChange,
)
from service.core.runtime import runtime
from service.handoffs import thread
from service.handoffs.actions import reassign
from service.handoffs.queue import revoke_links
from service.intake.keys import create_key
from tests.conftest import PASSWORD, csrf_token, log_in, run_worker
from tests.factories import promoted
from tests.test_end_to_end import BANT

QUEUE_LINK = re.compile(r"http://localhost(/r/[A-Za-z0-9_.-]+)")
ACCEPT = re.compile(r'<a class="button accept" href="([^"]+)"')
ADA = {"first_name": "Ada", "company": "Engines & Co"}
BOB = {"first_name": "Bob", "company": "Looms Ltd"}
CID = {"first_name": "Cid", "company": "Other Rep Inc"}


def queue_path(message) -> str:
    """The queue link of a received email, as a path: found in the text and the HTML part."""
    text = message.get_body(("plain",)).get_content()
    path = QUEUE_LINK.search(text).group(1)
    assert f'href="http://localhost{path}"' in message.get_body(("html",)).get_content()
    return path


def received_by(smtp, address: str, template_subject: str = "") -> list:
    return [m for m in smtp.messages
            if address in m["To"] and template_subject in str(m["Subject"])]


def state() -> tuple:
    """Everything a visit could change."""
    return (sorted((h.id, h.status, h.decided_at) for h in Handoff.select()),
            sorted((lead.id, lead.stage, lead.updated_at) for lead in Lead.select()),
            AuditEvent.select().count(), OutboxEmail.select().count(),
            StageChange.select().count(), HandoffMessage.select().count(),
            sorted((r.id, r.link_version, r.morning_sent_on) for r in Rep.select()))


def two_reps_with_handoffs(rep, now) -> dict:
    """Riley (London) has Ada and Bob waiting and Dee decided; Olive (New York) has Cid."""
    other = Rep.create(email="olive.other@example.com", name="Olive Other",
                       time_zone="America/New_York")
    ada = promoted(rep, "ada@example.com", at=now, note="Asked for <b>pricing</b> twice",
                   fields=ADA, activity="pricing_page_view")
    bob = promoted(rep, "bob@example.com", at=now + timedelta(hours=1), fields=BOB,
                   activity="pricing_page_view")
    cid = promoted(other, "cid@example.com", at=now, note="Olive's own note", fields=CID,
                   activity="pricing_page_view")
    dee = promoted(rep, "dee@example.com", at=now, fields={"first_name": "Dee"},
                   activity="pricing_page_view")
    lifecycle.accept(dee.id, bant=BANT, notes="", actor=rep.email, now=now,
                     requires=["need"])
    return {"other": other, "ada": ada, "bob": bob, "cid": cid, "dee": dee}


def get(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_the_link_in_the_email_opens_the_reps_queue_over_http(app, rep, marketer, now, smtp,
                                                                 live_server):
    world = two_reps_with_handoffs(rep, now)
    run_worker()
    [first, *_] = received_by(smtp, "riley.rep@example.com", "Ada")
    path = queue_path(first)
    before = state()

    status, headers, page = get(live_server + path)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "2 leads waiting for your decision" in page
    assert "Ada" in page and "Engines &amp; Co" in page and "Bob" in page
    assert "Asked for &lt;b&gt;pricing&lt;/b&gt; twice" in page  # the marketer's note, as text
    assert "Tue 24 Nov 2026, 09:00 (Europe/London)" in page  # Ada's deadline, the rep's zone
    assert "overdue by" in page or " left" in page
    assert page.index("Ada") < page.index("Bob")  # the nearest deadline first
    assert "Cid" not in page and "Olive" not in page and "Dee" not in page
    assert "cid@example.com" not in page and "dee@example.com" not in page
    assert get(live_server + path)[0] == 200
    assert state() == before, "opening the queue changes nothing"

    accept = html.unescape(ACCEPT.findall(page)[0])
    assert accept.startswith("http://localhost/h/")
    link = links.read_handoff_token(app.secret_key, accept.rpartition("/")[2],
                                    max_age_hours=1)
    assert (link.handoff_id, link.rep_id, link.action) == (world["ada"].id, rep.id, "accept")

    [olive_mail] = received_by(smtp, "olive.other@example.com")
    status, _, olive_page = get(live_server + queue_path(olive_mail))
    assert status == 200 and "Cid" in olive_page and "Olive&#39;s own note" in olive_page
    assert "Ada" not in olive_page and "Bob" not in olive_page


def test_accept_from_the_queue_page_decides(app, rep, marketer, now, smtp):
    world = two_reps_with_handoffs(rep, now)
    run_worker()
    client = app.test_client()
    path = queue_path(received_by(smtp, "riley.rep@example.com", "Bob")[0])
    page = client.get(path)
    accept = html.unescape(ACCEPT.findall(page.text)[0]).removeprefix("http://localhost")
    form = client.get(accept)
    assert form.status_code == 200 and "Accept: Ada" in form.text
    decided = client.post(accept, data={**BANT, "csrf_token": csrf_token(form.text)})
    assert decided.status_code == 200
    assert Handoff.get_by_id(world["ada"].id).status == "accepted"
    again = client.get(path)
    assert "1 lead waiting for your decision" in again.text
    assert "Ada" not in again.text and "Bob" in again.text


def test_get_and_head_change_nothing_and_post_is_refused(app, rep, now, smtp):
    two_reps_with_handoffs(rep, now)
    run_worker()
    client = app.test_client()
    path = queue_path(received_by(smtp, "riley.rep@example.com", "Ada")[0])
    before = state()
    for _ in range(3):
        assert client.get(path).status_code == 200
    assert client.head(path).status_code == 200
    assert client.post(path, data={"action": "accept"}).status_code in (400, 405)
    assert state() == before


def test_every_rep_email_links_to_the_queue(app, rep, marketer, now, smtp):
    """The new handoff, the reminder, the move and a marketer's message all carry the link;
    the marketer's feedback does not (it is not the rep's)."""
    world = two_reps_with_handoffs(rep, now)
    thread.post(world["ada"], author="marketer", address="mia@example.com", name="Mia",
                body="Any news?", via="panel", settings=runtime.settings, now=now)
    reassign(world["bob"].id, rep_id=world["other"].id, actor="sam@example.com",
             settings=runtime.settings, now=now)
    runtime.queue.enqueue("workers.jobs.sweep_sla")  # the deadlines passed: reminders
    run_worker()
    for message in received_by(smtp, "riley.rep@example.com"):
        assert client_opens(app, queue_path(message)), message["Subject"]
    subjects = " | ".join(str(m["Subject"]) for m in received_by(smtp, "riley.rep@example.com"))
    assert "New MQL" in subjects and "Mia on Ada" in subjects and "reassigned" in subjects
    assert "Reminder: Ada" in subjects
    for message in received_by(smtp, "mia@example.com"):
        assert not QUEUE_LINK.search(message.get_body(("plain",)).get_content())


def client_opens(app, path: str) -> bool:
    return app.test_client().get(path).status_code == 200


def test_the_link_expires(app, rep, now, smtp):
    two_reps_with_handoffs(rep, now)
    signed_at = datetime.now(UTC)
    token = links.queue_token(app.secret_key, rep.id, rep.link_version)
    client = app.test_client()
    ttl = timedelta(hours=runtime.settings.handoff.queue_link_ttl_hours)
    assert ttl == timedelta(hours=168)
    with time_machine.travel(signed_at + ttl - timedelta(minutes=5), tick=False):
        assert client.get(f"/r/{token}").status_code == 200
    with time_machine.travel(signed_at + ttl + timedelta(minutes=5), tick=False):
        expired = client.get(f"/r/{token}")
    assert expired.status_code == 410
    assert "expired" in expired.text and "Ada" not in expired.text
    assert expired.headers["Cache-Control"] == "no-store"


def test_a_manager_revokes_the_links(app, rep, now, smtp):
    two_reps_with_handoffs(rep, now)
    run_worker()
    old = queue_path(received_by(smtp, "riley.rep@example.com", "Ada")[0])
    olive = queue_path(received_by(smtp, "olive.other@example.com")[0])
    create_user("sam@example.com", role="sales_manager", password=PASSWORD, now=now)
    manager = app.test_client()
    assert log_in(manager, "sam@example.com").status_code == 302
    token = csrf_token(manager.get("/admin/rep/").text)
    answer = manager.post("/admin/rep/action/", data={
        "action": "revoke_links", "rowid": [str(rep.id)], "csrf_token": token})
    assert answer.status_code == 302
    client = app.test_client()
    revoked = client.get(old)
    assert revoked.status_code == 410
    assert "withdrawn" in revoked.text and "Ada" not in revoked.text
    assert client.get(olive).status_code == 200, "another rep's links stand"
    event = AuditEvent.get(AuditEvent.action == "revoke_queue_links")
    assert (event.actor, event.subject) == ("sam@example.com", f"rep:{rep.id}")
    promoted(rep, "eve@example.com", at=now, fields={"first_name": "Eve"},
             activity="pricing_page_view")
    run_worker()
    fresh = queue_path(received_by(smtp, "riley.rep@example.com", "Eve")[0])
    assert fresh != old
    assert client.get(fresh).status_code == 200 and "Eve" in client.get(fresh).text


def test_deactivating_a_rep_revokes_the_links(app, rep, now, smtp):
    two_reps_with_handoffs(rep, now)
    run_worker()
    old = queue_path(received_by(smtp, "riley.rep@example.com", "Ada")[0])
    create_user("sam@example.com", role="sales_manager", password=PASSWORD, now=now)
    manager = app.test_client()
    log_in(manager, "sam@example.com")
    edit = f"/admin/rep/edit/?id={rep.id}"
    fields = {"email": rep.email, "name": rep.name, "time_zone": rep.time_zone,
              "weight": "1", "capacity": "0", "manager_email": "",
              "csrf_token": csrf_token(manager.get(edit).text)}
    assert manager.post(edit, data=fields).status_code == 302  # "active" unticked
    assert Rep.get_by_id(rep.id).active is False
    client = app.test_client()
    assert client.get(old).status_code == 410
    assert manager.post(edit, data={**fields, "active": "y"}).status_code == 302
    assert Rep.get_by_id(rep.id).active is True
    assert client.get(old).status_code == 410, "reactivated, the old links stay dead"


def flipped(token: str) -> str:
    """token with a character of its signature changed (not the last: its low bits are
    padding, and a change there may decode to the same bytes)."""
    return token[:-10] + ("A" if token[-10] != "A" else "B") + token[-9:]


def test_the_link_is_hidden_in_logs_the_panel_and_quoted_replies(app, rep):
    token = links.queue_token(app.secret_key, rep.id, 0)
    line = f"GET /r/{token}?x=1 HTTP/1.1"
    assert logs.scrub(line) == "GET /r/[token]?x=1 HTTP/1.1"
    assert token not in links.without_signed_links(f"> open http://localhost/r/{token} now")
    assert inert_links(f'<a href="http://localhost/r/{token}">queue</a>') == "<a>queue</a>"


def test_garbled_and_foreign_tokens_answer_4xx(app, rep, now):
    promoted(rep, "ada@example.com", at=now, fields=ADA, activity="pricing_page_view")
    good = links.queue_token(app.secret_key, rep.id, 0)
    decision = links.handoff_token(app.secret_key, 1, rep.id, "accept", "x")
    forged = URLSafeTimedSerializer("another secret", salt=links.QUEUE_SALT).dumps([rep.id, 0])
    odd = URLSafeTimedSerializer(app.secret_key, salt=links.QUEUE_SALT)
    client = app.test_client()
    for token in (flipped(good), good[5:], "x", decision,
                  forged, odd.dumps([rep.id]), odd.dumps("a"), odd.dumps([True, 0]),
                  odd.dumps([rep.id, "0"]), odd.dumps([999999, 0]), odd.dumps([rep.id, 1])):
        answer = client.get(f"/r/{token}")
        assert 400 <= answer.status_code < 500, token
        assert "Ada" not in answer.text
    assert client.get(f"/r/{good}").status_code == 200


def test_deactivating_a_rep_through_the_api_revokes_the_links(app, rep, now):
    key = create_key("api", "hr", sources=["hr"], actor="t", now=now,
                     owner="mia@example.com")[1]
    token = links.queue_token(app.secret_key, rep.id, rep.link_version)
    client = app.test_client()
    assert client.get(f"/r/{token}").status_code == 200
    api = {"Authorization": f"Bearer {key}"}
    same = client.post("/api/v1/reps", json={"email": rep.email, "name": "Riley R."},
                       headers=api)
    assert same.status_code == 200 and client.get(f"/r/{token}").status_code == 200
    gone = client.post("/api/v1/reps", json={"email": rep.email, "active": False},
                       headers=api)
    assert gone.status_code == 200
    assert client.get(f"/r/{token}").status_code == 410
    client.post("/api/v1/reps", json={"email": rep.email, "active": True}, headers=api)
    assert client.get(f"/r/{token}").status_code == 410
    assert AuditEvent.get(AuditEvent.action == "revoke_queue_links").subject == f"rep:{rep.id}"


def email_accept_path(message) -> str:
    """The Accept link of a received rep email (its HTML part), as a path."""
    href = ACCEPT.search(message.get_body(("html",)).get_content()).group(1)
    return html.unescape(href).removeprefix("http://localhost")


def manager_client(app, now):
    create_user("sam@example.com", role="sales_manager", password=PASSWORD, now=now)
    manager = app.test_client()
    assert log_in(manager, "sam@example.com").status_code == 302
    return manager


def rep_form(manager, rep, **changes) -> dict:
    edit = f"/admin/rep/edit/?id={rep.id}"
    return {"email": rep.email, "name": rep.name, "time_zone": rep.time_zone, "weight": "1",
            "capacity": "0", "manager_email": "", "active": "y",
            "csrf_token": csrf_token(manager.get(edit).text), **changes}


def test_revoking_ends_the_decision_links_of_the_emails_and_the_queue_page(app, rep, now,
                                                                            smtp):
    """One revocation ends both kinds of link: Accept/Reject from the emails and from the
    queue page answer 410 and decide nothing; the next email brings links that work."""
    world = two_reps_with_handoffs(rep, now)
    run_worker()
    client = app.test_client()
    from_email = email_accept_path(received_by(smtp, "riley.rep@example.com", "Ada")[0])
    queue = queue_path(received_by(smtp, "riley.rep@example.com", "Ada")[0])
    from_page = html.unescape(ACCEPT.findall(client.get(queue).text)[0]).removeprefix(
        "http://localhost")
    olive = email_accept_path(received_by(smtp, "olive.other@example.com")[0])
    form = client.get(from_email)
    assert form.status_code == 200 and "Accept: Ada" in form.text
    assert client.get(from_page).status_code == 200
    manager = manager_client(app, now)
    manager.post("/admin/rep/action/", data={
        "action": "revoke_links", "rowid": [str(rep.id)],
        "csrf_token": csrf_token(manager.get("/admin/rep/").text)})
    before = state()
    for path in (from_email, from_page):
        answer = client.get(path)
        assert answer.status_code == 410, path
        assert "withdrawn" in answer.text and "Accept: Ada" not in answer.text
        assert answer.headers["Cache-Control"] == "no-store"
        posted = client.post(path, data={**BANT, "csrf_token": csrf_token(form.text)})
        assert posted.status_code == 410
    assert state() == before, "a withdrawn link decides nothing"
    assert Handoff.get_by_id(world["ada"].id).status == "pending"
    assert client.get(olive).status_code == 200, "another rep's links stand"

    promoted(rep, "eve@example.com", at=now, fields={"first_name": "Eve"},
             activity="pricing_page_view")
    run_worker()
    eve_mail = received_by(smtp, "riley.rep@example.com", "Eve")[0]
    fresh = client.get(email_accept_path(eve_mail))
    assert fresh.status_code == 200 and "Accept: Eve" in fresh.text
    page = client.get(queue_path(eve_mail)).text
    for link in ACCEPT.findall(page):
        assert client.get(html.unescape(link).removeprefix("http://localhost")).status_code \
            == 200


def test_an_inactive_reps_decision_links_do_not_decide(app, rep, now, smtp):
    """However the rep became inactive (here by a direct update, which revokes nothing),
    their links are withdrawn; links made before decision links carried the rep's version
    stay usable until they expire, but not while the rep is inactive either."""
    world = two_reps_with_handoffs(rep, now)
    run_worker()
    ada = world["ada"]
    from_email = email_accept_path(received_by(smtp, "riley.rep@example.com", "Ada")[0])
    legacy = "/h/" + links.handoff_token(app.secret_key, ada.id, rep.id, "accept",
                                         ada.lead.public_id)
    client = app.test_client()
    form = client.get(from_email)
    assert form.status_code == 200 and client.get(legacy).status_code == 200
    Rep.update(active=False).where(Rep.id == rep.id).execute()
    before = state()
    for path in (from_email, legacy):
        assert client.get(path).status_code == 410
        assert "withdrawn" in client.get(path).text
        assert client.post(path, data={**BANT, "csrf_token": csrf_token(form.text)}
                           ).status_code == 410
    assert state() == before
    Rep.update(active=True).where(Rep.id == rep.id).execute()
    assert client.get(from_email).status_code == 200, "not revoked: usable again"
    revoke_links([rep.id], actor="sam@example.com", now=now)
    assert client.get(from_email).status_code == 410
    assert client.get(legacy).status_code == 200, "an old link stands until it expires"
    decided = client.post(legacy, data={**BANT, "csrf_token": csrf_token(form.text)})
    assert decided.status_code == 200
    assert Handoff.get_by_id(ada.id).status == "accepted"


def test_deactivating_a_rep_in_the_panel_ends_their_decision_links(app, rep, now, smtp):
    two_reps_with_handoffs(rep, now)
    run_worker()
    from_email = email_accept_path(received_by(smtp, "riley.rep@example.com", "Ada")[0])
    manager = manager_client(app, now)
    edit = f"/admin/rep/edit/?id={rep.id}"
    fields = rep_form(manager, rep)
    del fields["active"]
    assert manager.post(edit, data=fields).status_code == 302
    assert manager.post(edit, data=rep_form(manager, rep)).status_code == 302  # active again
    assert Rep.get_by_id(rep.id).active is True
    assert app.test_client().get(from_email).status_code == 410


def test_changing_a_reps_email_in_the_panel_revokes_their_links(app, rep, now, smtp):
    two_reps_with_handoffs(rep, now)
    run_worker()
    mail = received_by(smtp, "riley.rep@example.com", "Ada")[0]
    old_queue, old_accept = queue_path(mail), email_accept_path(mail)
    manager = manager_client(app, now)
    edit = f"/admin/rep/edit/?id={rep.id}"
    client = app.test_client()
    renamed = manager.post(edit, data=rep_form(manager, rep, name="Riley Renamed"))
    assert renamed.status_code == 302 and Rep.get_by_id(rep.id).name == "Riley Renamed"
    assert client.get(old_queue).status_code == 200, "the same address: links stand"
    assert AuditEvent.select().where(AuditEvent.action == "revoke_queue_links").count() == 0
    moved = manager.post(edit, data=rep_form(manager, Rep.get_by_id(rep.id),
                                             email=" Riley.New@Example.com "))
    assert moved.status_code == 302
    assert Rep.get_by_id(rep.id).email == "riley.new@example.com"
    for path in (old_queue, old_accept):
        answer = client.get(path)
        assert answer.status_code == 410 and "withdrawn" in answer.text, path
    event = AuditEvent.get(AuditEvent.action == "revoke_queue_links")
    assert (event.actor, event.subject) == ("sam@example.com", f"rep:{rep.id}")


def test_the_panel_refuses_an_unknown_time_zone(app, rep, now):
    manager = manager_client(app, now)
    edit = f"/admin/rep/edit/?id={rep.id}"
    for bad in ("Mars/Olympus", "Europe/Londn", "../../etc/passwd", "", "UTC\x7f"):
        answer = manager.post(edit, data=rep_form(manager, rep, time_zone=bad))
        assert answer.status_code == 200, bad
        assert "unknown time zone" in answer.text and "Europe/London" in answer.text
        assert Rep.get_by_id(rep.id).time_zone == "Europe/London"
    created = manager.post("/admin/rep/new/", data={
        **rep_form(manager, rep, time_zone="Moon/Base"), "email": "new.rep@example.com"})
    assert created.status_code == 200 and "unknown time zone" in created.text
    assert not Rep.select().where(Rep.email == "new.rep@example.com").exists()
    saved = manager.post(edit, data=rep_form(manager, rep, time_zone=" Asia/Tokyo "))
    assert saved.status_code == 302
    assert Rep.get_by_id(rep.id).time_zone == "Asia/Tokyo"


def test_every_answer_under_a_signed_path_is_private(app, rep, now):
    """404s and 405s under /r/, /h/, /u/ and /c/ never reach the views, yet their URLs may
    hold a token: they carry the private headers too; other paths keep the defaults."""
    handoff = promoted(rep, "ada@example.com", at=now, fields=ADA, activity="pricing_page_view")
    queue = links.queue_token(app.secret_key, rep.id, rep.link_version)
    decision = links.handoff_token(app.secret_key, handoff.id, rep.id, "accept",
                                   handoff.lead.public_id)
    client = app.test_client()
    answers = {"POST /r/": client.post(f"/r/{queue}"), "PUT /h/": client.put(f"/h/{decision}"),
               "GET /r/x/y": client.get(f"/r/{queue}/more"), "GET /h/": client.get("/h/"),
               "DELETE /u/": client.delete("/u/token"), "GET /c/x/y": client.get("/c/a/b"),
               "GET /r/ok": client.get(f"/r/{queue}")}
    assert [a.status_code for a in answers.values()] == [405, 405, 404, 404, 405, 404, 200]
    for name, answer in answers.items():
        assert answer.headers["Cache-Control"] == "no-store", name
        assert answer.headers["X-Robots-Tag"] == "noindex, nofollow", name
        assert answer.headers["Referrer-Policy"] == "no-referrer", name
    elsewhere = client.get("/nowhere")
    assert elsewhere.status_code == 404 and "X-Robots-Tag" not in elsewhere.headers
    assert elsewhere.headers["Referrer-Policy"] == "same-origin"
