"""The decision from the rep's side: a race of 20 posts, feedback to marketing, and lead
input that stays text everywhere it is shown."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

from service.core import links
from service.core.models import Handoff, OutboxEmail, StageChange
from tests.conftest import csrf_token, log_in, run_worker
from tests.factories import at_once, promoted
from tests.test_end_to_end import BANT, link_from

EVIL = "<script>alert('x')</script>"
ADA = {"first_name": "Ada", "company": "Engines & Co"}
HOT = {"activity": "pricing_page_view", "note": "Hot <b>lead</b>"}


def test_twenty_concurrent_decisions_one_wins(app, rep, marketer, now, live_server, smtp):
    handoff = promoted(rep, at=now, fields=ADA, **HOT)
    accept = links.handoff_token(app.secret_key, handoff.id, rep.id, "accept",
                                 handoff.lead.public_id)
    reject = links.handoff_token(app.secret_key, handoff.id, rep.id, "reject",
                                 handoff.lead.public_id)

    def ready(i):
        token = accept if i % 2 else reject
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{live_server}/h/{token}", timeout=30).read().decode()
        form = {"csrf_token": csrf_token(page), "notes": f"try {i}",
                **(BANT if i % 2 else {"reason": "not_a_fit"})}
        return opener, f"{live_server}/h/{token}", urllib.parse.urlencode(form).encode()

    posts = [ready(i) for i in range(20)]

    def decide(i):
        opener, url, data = posts[i]
        try:
            with opener.open(url, data=data, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    results = at_once(decide, 20)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * 19
    assert all("already decided" in text for status, text in results if status == 409)
    decided = Handoff.get_by_id(handoff.id)
    assert decided.status in ("accepted", "rejected")
    assert StageChange.select().where(StageChange.from_stage == "mql").count() == 1
    feedback = OutboxEmail.select().where(OutboxEmail.template == "decision_feedback")
    assert [row.to_address for row in feedback] == ["mia@example.com"]


def test_feedback_reaches_the_marketer(app, rep, marketer, now, smtp):
    handoff = promoted(rep, at=now, fields=ADA, **HOT)
    run_worker()
    client = app.test_client()
    path = link_from(smtp.text(0), "reject")
    page = client.get(path)
    client.post(path, data={"reason": "not_ready", "notes": "Budget frozen until Q3",
                            "csrf_token": csrf_token(page.text)})
    run_worker()
    feedback = smtp.messages[1]
    assert feedback["To"] == "mia@example.com"
    assert feedback["Subject"] == "Riley Rep rejected Ada (Engines & Co)"
    text = smtp.text(1)
    assert "Not ready to buy yet" in text and "nurture sequence default" in text
    assert "Budget frozen until Q3" in text
    assert Handoff.get_by_id(handoff.id).outcome == "nurture:default"


def test_lead_input_stays_text(app, rep, marketer, now, smtp):
    handoff = promoted(rep, at=now, fields={**ADA, "first_name": EVIL}, **HOT)
    run_worker()
    message = smtp.messages[0]
    html = message.get_body(("html",)).get_content()
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "Hot &lt;b&gt;lead&lt;/b&gt;" in html
    assert EVIL in smtp.text(0), "the plain-text part shows the name as typed"
    assert "Europe/London" in smtp.text(0), "deadline in the rep's time zone"
    rep_page = app.test_client().get(link_from(smtp.text(0), "accept")).text
    assert EVIL not in rep_page and "&lt;script&gt;" in rep_page
    panel = app.test_client()
    log_in(panel, "mia@example.com")
    for path in ("/admin/lead/", f"/admin/lead/details/?id={handoff.lead_id}",
                 f"/admin/outbox/preview/{handoff.emails[0].id}"):
        page = panel.get(path).text
        assert EVIL not in page and re.search(r"&lt;script&gt;|&amp;lt;script", page), path


def test_a_refused_answer_is_said_once(app, rep, marketer, now, smtp):
    promoted(rep, at=now, fields=ADA, **HOT)
    run_worker()
    client = app.test_client()
    path = link_from(smtp.text(0), "accept")
    page = client.get(path)
    answer = client.post(path, data={"need": "unknown", "csrf_token": csrf_token(page.text)})
    assert answer.status_code == 400
    assert answer.text.count("need is required to accept this lead") == 1
