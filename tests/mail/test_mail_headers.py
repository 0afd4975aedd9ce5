"""A name or a subject can never break an email's headers, and one email that can never be
sent never stops the others: control characters are cleaned where names enter (forms,
tracking, webhooks, CSV, the API, the panel); every header goes through one function that
cannot emit a line break; a row that cannot be composed or written fails alone, with its
reason. Received over real SMTP from real RQ workers."""

from __future__ import annotations

import ast
import io
import json
from datetime import timedelta
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.mime.text import MIMEText
from pathlib import Path

import time_machine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from service.accounts.users import create_user
from service.core import outbox
from service.core.db import transaction, utcnow
from service.core.models import Handoff, Lead, OutboxEmail, Rep, Team
from service.core.runtime import runtime
from service.intake.importer import import_csv
from service.intake.keys import create_key
from service.mail.transport import (
    HEADER_LIMIT,
    NAME_LIMIT,
    address,
    build_message,
    header_text,
    wire_bytes,
)
from tests.conftest import PASSWORD, ROOT, csrf_token, log_in, run_worker
from tests.factories import enrolled, new_lead, promoted, rep_in_team
from tests.handoffs.test_escalation import SLA, START, promote, sweep_job
from tests.nurture.test_nurture import FRIDAY_EVENING, SETTINGS, nurture_mail, sweep

FIRST_STEP = FRIDAY_EVENING + timedelta(days=5, hours=-9)  # Wednesday 09:00 London
BAD = "Ada\r\nBcc: thief@example.com"
CLEAN = "Ada Bcc: thief@example.com"
TO_ADA = '"Ada Bcc: thief@example.com" <ada@example.com>'


def first_nurture_email(app, smtp, clock):
    """Enroll ada@example.com and return her first nurture email, as received."""
    enrolled(Lead.get(Lead.email == "ada@example.com"), at=FRIDAY_EVENING)
    clock.move_to(FIRST_STEP)
    sweep()
    [step] = nurture_mail(smtp)
    return step


def assert_one_clean_line(step) -> None:
    assert step["To"] == TO_ADA and step["Bcc"] is None
    assert Lead.get(Lead.email == "ada@example.com").first_name == CLEAN


def test_a_first_name_with_a_line_break_from_the_public_form(make_app, smtp):
    app = make_app(**SETTINGS)
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        response = app.test_client().post("/f/contact", data={
            "email": "ada@example.com", "first_name": BAD})
        assert response.status_code == 200
        assert_one_clean_line(first_nurture_email(app, smtp, clock))


def test_a_first_name_with_a_line_break_from_the_tracking_api(make_app, smtp, now):
    app = make_app(**SETTINGS)
    key = create_key("write_key", "website", sources=["website"], actor="t", now=now)[1]
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        response = app.test_client().post("/v1/identify", json={
            "writeKey": key, "userId": "u-1",
            "traits": {"email": "ada@example.com", "firstName": BAD}})
        assert response.status_code == 200
        run_worker()
        assert_one_clean_line(first_nurture_email(app, smtp, clock))


def test_a_first_name_with_a_line_break_from_a_webhook(make_app, smtp, now):
    app = make_app(**SETTINGS)
    secret = create_key("webhook", "website", sources=["website"], actor="t", now=now)[1]
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        body = json.dumps({"email": "ada@example.com", "type": "webinar_attended",
                           "occurred_at": "2026-11-27T10:00:00Z", "lead": {"first_name": BAD}})
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(utcnow().timestamp())),
                   "webhook-signature": Webhook(secret).sign("msg_1", utcnow(), body),
                   "content-type": "application/json"}
        response = app.test_client().post("/webhooks/website", data=body, headers=headers)
        assert response.status_code == 202
        run_worker()
        assert_one_clean_line(first_nurture_email(app, smtp, clock))


def test_a_first_name_with_a_line_break_from_a_csv_import(make_app, smtp, tmp_path):
    app = make_app(**SETTINGS)
    file = tmp_path / "people.csv"
    file.write_text(f'Email,First Name\nada@example.com,"{BAD}"\n', newline="")
    with time_machine.travel(FRIDAY_EVENING, tick=False) as clock:
        assert import_csv(file, source="import", now=FRIDAY_EVENING).created == 1
        assert_one_clean_line(first_nurture_email(app, smtp, clock))


def handoff_email(app, smtp, rep: Rep):
    """Promote a new lead to rep; the handoff email the rep receives."""
    promoted(rep, at=utcnow(), fields={"first_name": "Ada"})
    run_worker()
    return next(m for m in smtp.messages if m["To"].endswith(f"<{rep.email}>"))


def test_a_rep_name_with_a_line_break_from_the_api_is_cleaned(app, smtp):
    key = create_key("api", "crm", sources=["crm"], actor="t", now=utcnow(),
                     owner="mia@example.com")[1]
    response = app.test_client().post("/api/v1/reps", json={
        "email": "riley@example.com", "name": "Riley\r\nBcc: thief@example.com\u2028"},
        headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201
    assert response.json["name"] == "Riley Bcc: thief@example.com"
    received = handoff_email(app, smtp, Rep.get(Rep.email == "riley@example.com"))
    assert received["To"] == '"Riley Bcc: thief@example.com" <riley@example.com>'
    assert received["Bcc"] is None


def test_a_rep_name_with_a_line_break_from_the_panel_is_cleaned(app, now):
    create_user("sam@example.com", role="sales_manager", password=PASSWORD, now=now)
    client = app.test_client()
    log_in(client, "sam@example.com")
    form = client.get("/admin/rep/new/")
    saved = client.post("/admin/rep/new/", data={
        "email": "riley@example.com", "name": "Riley\r\n\tRep", "time_zone": "UTC",
        "weight": "1", "capacity": "0", "csrf_token": csrf_token(form.text)})
    assert saved.status_code == 302
    assert Rep.get(Rep.email == "riley@example.com").name == "Riley Rep"


def test_a_lead_name_with_a_line_break_from_the_panel_is_cleaned(app, marketer, now):
    lead = new_lead(at=now)
    client = app.test_client()
    log_in(client, "mia@example.com")
    form = client.get(f"/admin/lead/edit/?id={lead.id}")
    saved = client.post(f"/admin/lead/edit/?id={lead.id}", data={
        "first_name": BAD, "company": "Acme\r\nLtd", "csrf_token": csrf_token(form.text)})
    assert saved.status_code == 302
    lead = Lead.get_by_id(lead.id)
    assert (lead.first_name, lead.company) == (CLEAN, "Acme Ltd")


def test_a_rep_row_written_with_a_line_break_still_gets_its_handoff_email(app, smtp):
    """Rows written before names were cleaned: the header function keeps them one line."""
    rep = Rep.create(email="riley@example.com", name="Riley\r\nBcc: thief@example.com")
    received = handoff_email(app, smtp, rep)
    assert received["To"] == '"Riley Bcc: thief@example.com" <riley@example.com>'
    assert received["Bcc"] is None
    assert OutboxEmail.get(OutboxEmail.to_address == rep.email).sent_at is not None


def digest_context(now) -> dict:
    return {"start": (now - timedelta(days=7)).date().isoformat(), "end": now.date().isoformat()}


NEVER = {  # address → (template, context): rows no send can ever succeed with
    "sam@example.com": ("weekly_digest", {}),  # its context is gone
    "jo@example.com": ("no_such_email", {}),  # a template that does not exist
    "zoë@exämple.com": ("weekly_digest", None),  # cannot be sent without SMTPUTF8
    "": ("weekly_digest", None),  # no address at all
}
NEVER_REASONS = {"sam@example.com": "cannot be composed: KeyError: 'start'",
                 "jo@example.com": "cannot be composed: KeyError: 'no_such_email'",
                 "zoë@exämple.com": "cannot be composed: ValueError: 'zoë@exämple.com': a "
                                     "non-ASCII local part needs SMTPUTF8",
                 "": "cannot be composed: ValueError: not one email address: ''"}


def write_batch(now, *, queue: bool) -> None:
    """A batch in id order: a good email, those that can never go, another good one."""
    rows = [("mia@example.com", ("weekly_digest", None)), *NEVER.items(),
            ("lee@example.com", ("weekly_digest", None))]
    with transaction():
        for to, (template, context) in rows:
            context = digest_context(now) if context is None else context
            if queue:
                outbox.queue_email(template, to_address=to, now=now, context=context)
            else:
                OutboxEmail.create(template=template, to_address=to, context=context,
                                   created_at=now, message_id=f"<{to}@leadbridge>")


def assert_failed_alone(smtp) -> None:
    assert sorted(m["To"] for m in smtp.messages) == ["lee@example.com", "mia@example.com"]
    rows = {row.to_address: row for row in OutboxEmail.select()}
    for to, reason in NEVER_REASONS.items():
        assert rows[to].failed_at is not None and rows[to].sent_at is None
        assert rows[to].last_error.startswith(reason), rows[to].last_error
    assert all(rows[to].sent_at for to in ("mia@example.com", "lee@example.com"))
    assert outbox.unsent_ids(now=utcnow() + timedelta(days=1), older_than_seconds=0,
                             claim_seconds=90) == [], "a failed row is never tried again"


def test_a_row_that_can_never_be_sent_fails_alone_and_the_batch_goes(app, smtp, now):
    write_batch(utcnow(), queue=True)
    assert len(runtime.queue.job_ids) == 1, "one send job for the batch"
    run_worker()
    assert_failed_alone(smtp)
    create_user("admin@example.com", role="admin", password=PASSWORD, now=now)
    client = app.test_client()
    log_in(client, "admin@example.com")
    page = client.get("/admin/outbox/?flt0_failed_at_empty=0").text  # failed: not empty
    assert "cannot be composed: KeyError: &#39;start&#39;" in page
    assert "cannot be composed: KeyError: &#39;no_such_email&#39;" in page
    for row in OutboxEmail.select().where(OutboxEmail.failed_at.is_null(False)):
        details = client.get(f"/admin/outbox/details/?id={row.id}")
        preview = client.get(f"/admin/outbox/preview/{row.id}")
        assert details.status_code == preview.status_code == 200, row.to_address
        if "KeyError" in row.last_error:
            assert "This email cannot be shown: cannot be composed" in preview.text


def test_the_sweep_is_not_stuck_behind_a_row_that_can_never_be_sent(app, smtp):
    with time_machine.travel(utcnow(), tick=True) as clock:
        write_batch(utcnow(), queue=False)  # written, never queued: the sweep sends them
        clock.shift(timedelta(minutes=2))
        runtime.queue.enqueue("workers.jobs.sweep_outbox")
        run_worker()
        assert_failed_alone(smtp)
        clock.shift(timedelta(minutes=10))
        runtime.queue.enqueue("workers.jobs.sweep_outbox")
        run_worker()
    assert len(smtp.messages) == 2


# --- the header function, for any text ----------------------------------------------------

BREAKS = "\r\n\x00\t\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\u202e\ufeff\x7f"
SPECIALS = '"\\()<>@,;:.[]=? \u00a0'  # what address and encoded-word syntax is made of
TEXT = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(BREAKS + SPECIALS)),
               max_size=1200)
HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "Reply-To", "X-Note",
           "Content-Type", "MIME-Version"}


@given(TEXT)
@example("Ada\r\nBcc: thief@example.com")
@example("\r\n" * 5000 + "x" * 5000)
def test_header_text_is_never_more_than_one_line(value):
    text = header_text(value)
    assert "\r" not in text and "\n" not in text and len(text.splitlines()) <= 1
    assert text == text.strip() and "  " not in text and len(text) <= HEADER_LIMIT
    assert header_text(text) == text


def test_header_text_of_a_very_long_value():
    value = ("Ada\r\n" * 200_000) + "\ud800"  # a lone surrogate, even
    text = header_text(value)
    assert HEADER_LIMIT - 1 <= len(text) <= HEADER_LIMIT and text.startswith("Ada Ada")
    assert "\n" not in text and "\r" not in text


def header_block(raw: bytes) -> list[str]:
    return raw.split(b"\n\n", 1)[0].decode("ascii").split("\n")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=TEXT, sender_name=TEXT, subject=TEXT, note=TEXT)
@example(name=BAD, sender_name="Leadbridge\n", subject="Hi\r\nBcc: x@example.com", note="\n")
@example(name="=?utf-8?q?Boss?=", sender_name="é" * 500, subject="x" * 2000, note="y" * 2000)
@example(name='"\\', sender_name="a;" * 100, subject="=?utf-8?b?QWRh?=", note="ü\r\n" * 50)
def test_any_name_and_subject_make_a_message_that_reads_back_on_one_line(
        name, sender_name, subject, note):
    message = build_message(
        sender="leadbridge@example.com", sender_name=sender_name, to_address="ada@example.com",
        to_name=name, message_id="<1@example.com>", subject=subject, text="Hi", html="<p>Hi</p>",
        headers={"Reply-To": address(name, "riley@example.com"), "X-Note": note})
    raw = message.as_bytes()
    lines = header_block(raw)
    assert all(line[:1] in (" ", "\t") or line.split(":")[0] in HEADERS for line in lines)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == header_text(subject)
    for field, (who, email) in (("To", (name, "ada@example.com")),
                                ("From", (sender_name, "leadbridge@example.com")),
                                ("Reply-To", (name, "riley@example.com"))):
        [mailbox] = parsed[field].addresses
        assert (mailbox.display_name, mailbox.addr_spec) == (header_text(who, NAME_LIMIT), email)
    for field in parsed.keys():
        assert "\n" not in parsed[field] and "\r" not in parsed[field]
    assert parsed["Bcc"] is None and parsed.get_all("To") == [parsed["To"]]


def generated(message) -> bytes:
    """What smtplib.send_message() would send: email.generator's bytes, CRLF line ends."""
    out = io.BytesIO()
    BytesGenerator(out).flatten(message, linesep="\r\n")
    return out.getvalue()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=TEXT, subject=TEXT, note=TEXT, text=st.text(), html=st.text())
@example(name="Ada", subject="Hi", note="x", text="", html="")
@example(name="é" * 100, subject="=?utf-8?b?QWRh?=", note="\r\n.\r\n", text=".\n.\r\n",
         html="x" * 5000)
def test_the_bytes_sent_are_the_bytes_email_generator_writes(name, subject, note, text, html):
    message = build_message(
        sender="leadbridge@example.com", sender_name="Leadbridge", to_address="ada@example.com",
        to_name=name, message_id="<1@example.com>", subject=subject, text=text, html=html,
        headers={"Reply-To": address(name, "riley@example.com"), "X-Note": note})
    assert wire_bytes(message) == generated(message)
    parts = message.get_payload()
    for part, body, subtype in zip(parts, (text, html), ("plain", "html"), strict=True):
        assert part.as_bytes() == MIMEText(body, subtype, "utf-8").as_bytes()
        assert part.get_payload(decode=True).decode() == body


# --- the architecture keeps it the only way ---------------------------------------------

MAIL = Path("service/mail/transport.py")
# A provider's inbound payload put back together as the email it was, to be stored and
# read, never sent: no header of it reaches anyone's mailbox.
RECEIVED = Path("service/web/rebuilt_mail.py")
MESSAGE_MAKERS = {"formataddr", "Header", "MIMEText", "MIMEMultipart", "MIMEBase",
                  "EmailMessage", "Message", "Charset", "add_header", "replace_header",
                  "set_param", "set_raw", "__setitem__"}


def sources() -> dict[Path, ast.Module]:
    return {path.relative_to(ROOT): ast.parse(path.read_text(), str(path))
            for folder in ("service", "admin", "workers")
            for path in sorted((ROOT / folder).rglob("*.py"))}


def names_used(tree: ast.AST) -> set[str]:
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            used.update(alias.name.rpartition(".")[2] for alias in node.names)
    return used


def header_assignments(tree: ast.AST) -> list[tuple[ast.AST, ast.Subscript, ast.AST]]:
    """(function, target, value) of every `x[...] = value` inside a function."""
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Assign):
                    found += [(function, target, node.value) for target in node.targets
                              if isinstance(target, ast.Subscript)]
    return found


def test_only_service_mail_makes_messages_and_their_headers():
    for path, tree in sources().items():
        if path not in (MAIL, RECEIVED):
            assert not names_used(tree) & MESSAGE_MAKERS, f"{path} builds email headers"
            assert not [t for _, t, _ in header_assignments(tree)
                        if isinstance(t.value, ast.Name) and t.value.id in ("message", "msg")]


def test_build_message_assigns_every_header_through_the_header_function():
    tree = sources()[MAIL]
    assigned = [(f.name, t.value.id, v) for f, t, v in header_assignments(tree)]
    assert {(function, target) for function, target, _ in assigned} == {
        ("build_message", "message")}
    for _, _, value in assigned:
        assert isinstance(value, ast.Call) and value.func.id in ("header_text", "words")
    formataddr_callers = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                          and "formataddr" in names_used(f)}
    assert formataddr_callers == {"address"}


# --- an address is one addr-spec: checked where it enters, refused where mail is made ------

def sales_manager_client(app, now):
    create_user("sam@example.com", role="sales_manager", password=PASSWORD, now=now)
    client = app.test_client()
    log_in(client, "sam@example.com")
    return client


def test_the_panel_refuses_a_rep_with_a_list_or_a_line_break_for_an_address(app, now):
    client = sales_manager_client(app, now)
    form = client.get("/admin/rep/new/")
    saved = client.post("/admin/rep/new/", data={
        "email": "a@x.io, b@evil.io", "manager_email": "boss@x.io\r\nBcc: b@evil.io",
        "name": "A", "time_zone": "UTC", "weight": "1", "capacity": "0",
        "csrf_token": csrf_token(form.text)})
    assert saved.status_code == 200, "the form is shown again"
    assert saved.text.count("email is not valid") == 2
    assert Rep.select().count() == 0


def test_the_panel_refuses_a_team_manager_that_is_not_an_email(app, now):
    client = sales_manager_client(app, now)
    form = client.get("/admin/team/new/")
    saved = client.post("/admin/team/new/", data={
        "name": "EMEA\r\nWest", "manager_email": "not an email",
        "csrf_token": csrf_token(form.text)})
    assert saved.status_code == 200 and "email is not valid" in saved.text
    assert Team.select().count() == 0
    saved = client.post("/admin/team/new/", data={
        "name": "EMEA\r\nWest", "manager_email": " Boss@X.io ",
        "csrf_token": csrf_token(form.text)})
    assert saved.status_code == 302
    assert [(t.name, t.manager_email) for t in Team.select()] == [("EMEA West", "boss@x.io")]


def test_a_team_name_with_a_line_break_from_the_api_is_cleaned(app):
    key = create_key("api", "crm", sources=["crm"], actor="t", now=utcnow(),
                     owner="mia@example.com")[1]
    response = app.test_client().post("/api/v1/teams", json={"name": "EMEA\r\n\u2028West"},
                                      headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    assert Team.get().name == "EMEA West"


def test_a_manager_address_written_with_a_line_break_fails_alone_and_reaches_nobody(
        make_app, smtp):
    """A row written straight into the database: the escalation to it fails with its reason;
    the rest go; the server is never given the address hidden after the line break."""
    app = make_app(**SLA)
    riley = rep_in_team("riley@example.com", name="Riley",
                        manager_email="boss@x.io\r\nBcc: thief@evil.io")
    with time_machine.travel(START, tick=False) as clock:
        handoff = promote(app)
        run_worker()
        clock.move_to(START + timedelta(hours=2, minutes=5))
        sweep_job()
        run_worker()
    assert Handoff.get_by_id(handoff.id).escalated_at is not None
    rows = {row.to_address: row for row in OutboxEmail.select()
            .where(OutboxEmail.template == "sla_escalation")}
    bad = rows["boss@x.io\r\nBcc: thief@evil.io"]
    assert bad.sent_at is None and bad.failed_at is not None
    assert bad.last_error.startswith("cannot be composed: ValueError: not one email address")
    assert rows["mia@example.com"].sent_at is not None, "the promoter's escalation went"
    assert not [r for r in smtp.recipients if "evil" in r or "boss" in r]
    assert sorted(set(smtp.recipients)) == ["mia@example.com", riley.email]
    assert all("evil" not in str(m) for m in smtp.messages)


def test_a_rep_at_an_internationalised_domain_gets_the_handoff_email(app, smtp):
    key = create_key("api", "crm", sources=["crm"], actor="t", now=utcnow(),
                     owner="mia@example.com")[1]
    response = app.test_client().post("/api/v1/reps", json={
        "email": "ada@sub.tëst.io", "name": "Ada"}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    rep = Rep.get(Rep.email == "ada@sub.tëst.io")
    promoted(rep, "lee@example.com", at=utcnow())
    run_worker()
    [received] = smtp.messages
    assert received["To"] == "Ada <ada@sub.xn--tst-jma.io>"
    assert smtp.recipients == ["ada@sub.xn--tst-jma.io"]
    assert OutboxEmail.get(OutboxEmail.to_address == rep.email).sent_at is not None


def test_smtp_sends_to_the_row_s_address_whatever_the_to_header_says(smtp):
    from service.mail.transport import SMTPTransport

    message = build_message(sender="leadbridge@localhost", sender_name="Leadbridge",
                            to_address="ada@example.com", to_name="Ada", message_id="<1@lb>",
                            subject="Hi", text="Hi", html="<p>Hi</p>")
    del message["To"]
    message["To"] = "ada@example.com, thief@evil.example"  # as a header parser could read one
    answers = []
    SMTPTransport(host="127.0.0.1", port=smtp.port, security="none", username="", password="",
                  timeout=5).send([(1, message)], lambda *answer: answers.append(answer))
    assert answers == [(1, None)]
    assert smtp.recipients == ["ada@example.com"]
