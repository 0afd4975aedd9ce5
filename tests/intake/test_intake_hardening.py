"""Hostile input at the public door: replayed or stale email-provider events, lone UTF-16
surrogates, deeply nested JSON and huge numbers, and bodies streamed (chunked) or gzipped past
the limits. Each is refused with a clear 4xx and stores nothing."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.core import jsontext
from service.core.db import utcnow
from service.core.jsontext import unstorable
from service.core.models import Activity, Delivery, EmailEvent, InboundEvent, Lead, Team
from service.intake.keys import create_key
from service.nurture.suppression import is_suppressed
from tests.nurture.test_email_events import (  # noqa: F401 (events_app, sendgrid_key, sns_key: fixtures)
    SES_BOUNCE,
    events_app,
    mailgun_body,
    post,
    sendgrid_key,
    sns_envelope,
    sns_key,
)
from tests.web.test_tracking import basic
from tests.web.test_webhooks import signed
from workers import recorder

FAILED = {"event": "failed", "severity": "permanent", "reason": "bounce",
          "recipient": "gus@example.com"}
SOFT = {"notificationType": "Bounce", "bounce": {
    "bounceType": "Transient", "bounceSubType": "MailboxFull",
    "bouncedRecipients": [{"emailAddress": "dan@example.com"}]}}


@pytest.fixture
def providers(app, events_app):  # noqa: F811
    """The app with every email provider configured (test_email_events), made after `app`
    (which `secrets` uses) so that its settings are the ones the process binds."""
    return events_app


@pytest.fixture
def secrets(app):
    now = utcnow()
    return {kind: create_key(kind, "website", sources=["website"], actor="t", now=now,
                             owner="mia@example.com")[1]
            for kind in ("webhook", "write_key", "api")}


def stored() -> tuple[int, ...]:
    return (Lead.select().count(), Activity.select().count(), InboundEvent.select().count(),
            EmailEvent.select().count(), Team.select().count())


def sendgrid_post(app, key, events, stamp: int):
    body = json.dumps(events).encode()
    signature = key.sign(str(stamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return post(app, "sendgrid", body, {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(stamp)})


# 5. Email provider events: single-use Mailgun tokens, freshness everywhere ---------------

def test_a_mailgun_signature_is_used_once(providers):
    first = mailgun_body(FAILED, token="t" * 50)
    assert post(providers, "mailgun", first).status_code == 200
    assert is_suppressed("gus@example.com") and EmailEvent.select().count() == 1

    # The signature covers the timestamp and token only: replayed with other event data
    forged = json.loads(first)
    forged["event-data"] = {**FAILED, "recipient": "ceo@example.com"}
    replay = post(providers, "mailgun", json.dumps(forged).encode())
    assert replay.status_code == 409 and "used already" in replay.json["error"]["message"]
    assert not is_suppressed("ceo@example.com") and EmailEvent.select().count() == 1

    # Mailgun's own retry of the same delivery records nothing twice
    again = post(providers, "mailgun", first)
    assert again.status_code == 200 and again.json["duplicate"] is True
    assert EmailEvent.select().count() == 1


def test_a_mailgun_signature_cannot_be_moved_between_timestamp_and_token(providers):
    first = json.loads(mailgun_body(FAILED, token="e0" + "t" * 48))
    assert post(providers, "mailgun", json.dumps(first).encode()).status_code == 200
    moved = json.loads(json.dumps(first))
    moved["signature"]["timestamp"] = str(first["signature"]["timestamp"]) + "e0"
    moved["signature"]["token"] = "t" * 48
    moved["event-data"] = {**FAILED, "recipient": "ceo@example.com"}
    refused = post(providers, "mailgun", json.dumps(moved).encode())
    assert refused.status_code == 401
    assert not is_suppressed("ceo@example.com") and EmailEvent.select().count() == 1


def test_used_mailgun_tokens_are_pruned_after_a_day(providers):
    old = utcnow() - timedelta(days=2)
    Delivery.create(source="email:mailgun", delivery_id="key:old", received_at=old)
    assert post(providers, "mailgun", mailgun_body(FAILED)).status_code == 200
    ids = [d.delivery_id for d in Delivery.select().where(Delivery.source == "email:mailgun")]
    assert "key:old" not in ids and len(ids) == 2  # this token and its data's digest


def test_sendgrid_events_must_be_fresh_and_count_once(providers, sendgrid_key):  # noqa: F811
    bounce = [{"email": "jo@example.com", "event": "bounce", "type": "bounce"}]
    stale = sendgrid_post(providers, sendgrid_key, bounce, 978307200)  # 2001-01-01
    assert stale.status_code == 401 and "15 minutes" in stale.json["error"]["message"]
    assert EmailEvent.select().count() == 0 and not is_suppressed("jo@example.com")

    soft = [{"email": "kim@example.com", "event": "bounce", "type": "blocked"}]
    stamp = int(time.time())
    for _ in range(3):
        assert sendgrid_post(providers, sendgrid_key, soft, stamp).status_code == 200
    assert EmailEvent.select().count() == 1 and not is_suppressed("kim@example.com")


def test_ses_events_must_be_fresh_and_count_once(providers, sns_key):  # noqa: F811
    old = sns_envelope(sns_key, SES_BOUNCE, at=datetime(2001, 1, 1, tzinfo=UTC))
    stale = post(providers, "ses", old)
    assert stale.status_code == 401 and "75 minutes" in stale.json["error"]["message"]
    assert EmailEvent.select().count() == 0 and not is_suppressed("ann@example.com")

    once = sns_envelope(sns_key, SOFT)
    for _ in range(3):  # SNS retries a delivery with the same MessageId
        assert post(providers, "ses", once).status_code == 200
    assert EmailEvent.select().count() == 1 and not is_suppressed("dan@example.com")


# 8. Lone surrogates (and text that is not UTF-8) -----------------------------------------

LONE = "\ud800"  # written as the JSON escape "\ud800" by json.dumps


def test_lone_surrogates_are_refused_at_the_door(providers, secrets):
    client = providers.test_client()
    refused = []
    form = json.dumps({"email": "ada@example.com", "first_name": LONE})
    refused.append(client.post("/f/contact", data=form, content_type="application/json"))
    refused.append(client.post("/f/contact", data=b"email=ada%40example.com&first_name=%ED%A0%80",
                               content_type="application/x-www-form-urlencoded"))
    hook = {"email": "bob@example.com", "type": "webinar_attended", "lead": {"first_name": LONE}}
    body, headers = signed(secrets["webhook"], hook)
    refused.append(client.post("/webhooks/website", data=body, headers=headers))
    track = json.dumps({"userId": "u1", "event": "Trial Started", "context": {"traits": {
        "email": "cy@example.com", "firstName": LONE}}})
    as_json = {**basic(secrets["write_key"]), "Content-Type": "application/json"}
    refused.append(client.post("/v1/track", data=track, headers=as_json))
    raw = json.dumps(json.loads(track), ensure_ascii=False).encode("utf-8", "surrogatepass")
    refused.append(client.post("/v1/track", data=raw, headers=as_json))
    refused.append(post(providers, "mailgun", mailgun_body({**FAILED, "reason": LONE})))
    refused.append(client.post("/api/v1/teams", data=json.dumps({"name": LONE}), headers={
        "Authorization": f"Bearer {secrets['api']}", "Content-Type": "application/json"}))
    assert [r.status_code for r in refused] == [400] * len(refused)
    for response in refused:
        message = response.json["error"]["message"] if response.is_json else response.text
        assert "surrogate" in message or "UTF-8" in message, message
    recorder.drain()
    assert stored() == (0, 0, 0, 0, 0)


# 9. Deep nesting and numbers out of range -----------------------------------------------

def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def test_deeply_nested_json_is_a_400_without_a_traceback(providers, secrets, caplog):
    client = providers.test_client()
    deep = nested(80_000)
    api = {"Authorization": f"Bearer {secrets['api']}"}
    answers = [
        client.post("/v1/track", data=deep, headers=basic(secrets["write_key"])),
        client.post("/v1/batch", data=deep, headers=basic(secrets["write_key"])),
        client.post("/f/contact", data=deep, content_type="application/json"),
        client.post("/webhooks/email-events/mailgun", data=deep),
        client.post("/webhooks/email-events/ses", data=deep),
        client.post("/webhooks/email-events/postmark", data=deep, headers={
            "Authorization": "Basic " + base64.b64encode(b"u:pm-secret").decode()}),
        client.post("/api/v1/teams", data=deep, headers=api),
        client.post("/api/v1/reps", data=deep, headers=api),
        client.post("/webhooks/website", data=signed(secrets["webhook"], None,
                                                       raw=deep.encode())[0],
                    headers=signed(secrets["webhook"], None, raw=deep.encode())[1]),
    ]
    assert [a.status_code for a in answers] == [400] * len(answers)
    assert all("nested deeper than 64 levels" in a.text for a in answers)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert stored() == (0, 0, 0, 0, 0)


def test_nesting_within_the_limit_is_accepted(app, secrets):
    client = app.test_client()
    message = ('{"userId": "u1", "event": "Trial Started", "properties": {"x": DEEP}, '
               '"context": {"traits": {"email": "deep@example.com"}}}')
    assert client.post("/v1/track", data=message.replace("DEEP", nested(60)),
                       headers=basic(secrets["write_key"])).status_code == 200
    too_deep = client.post("/v1/track", data=message.replace("DEEP", nested(70)),
                           headers=basic(secrets["write_key"]))
    assert too_deep.status_code == 400
    recorder.drain()
    assert Activity.select().count() == 1 and InboundEvent.select().count() == 0


@pytest.mark.parametrize("number", ["1" * 5000, "1e309", "-1e309", "NaN", "-Infinity"])
def test_numbers_out_of_range_are_a_400(app, secrets, number):
    message = ('{"userId": "u1", "event": "Trial Started", "properties": {"x": NUMBER}, '
               '"context": {"traits": {"email": "num@example.com"}}}').replace("NUMBER", number)
    answer = app.test_client().post("/v1/track", data=message,
                                    headers=basic(secrets["write_key"]))
    assert answer.status_code == 400, answer.text
    recorder.drain()
    assert stored() == (0, 0, 0, 0, 0)


# 13. Limits hold for streamed (chunked) and gzipped bodies ------------------------------

def send_chunked(url: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    """POST body with Transfer-Encoding: chunked (no Content-Length) over a real socket; the
    status and the response body. The server may answer before it has read everything."""
    where = urlsplit(url)
    sock = socket.create_connection((where.hostname, where.port), timeout=30)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\nConnection: close\r\n"
                 f"Transfer-Encoding: chunked\r\n{head}\r\n".encode())

    def send():
        try:
            for start in range(0, len(body), 16384):
                part = body[start:start + 16384]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # answered and closed before the whole body went

    sender = threading.Thread(target=send)
    sender.start()
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except OSError:
        pass
    sender.join()
    sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_chunked_bodies_hold_the_limits(app, secrets, live_server):
    big_event = {"email": "ada@example.com", "type": "webinar_attended",
                 "properties": {"notes": "x" * 300_000}}
    body, headers = signed(secrets["webhook"], None, raw=json.dumps(big_event).encode())
    status, text = send_chunked(live_server, "/webhooks/website", body, headers)
    assert status == 413 and b"body over 256 KiB" in text  # intake.max_body_kib

    form = b"email=bob%40example.com&first_name=" + b"x" * (1024 * 1024)
    status, _ = send_chunked(live_server, "/f/contact", form,
                             {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413  # the app's 1 MiB: was cut off at 1 MiB and accepted
    status, _ = send_chunked(live_server, "/f/contact", json.dumps(
        {"email": "cy@example.com", "company": "y" * (1024 * 1024)}).encode(),
        {"Content-Type": "application/json", "Accept": "application/json"})
    assert status == 413

    message = {"userId": "u1", "event": "Trial Started", "properties": {"x": "y" * 600_000}}
    status, _ = send_chunked(live_server, "/v1/track", json.dumps(message).encode(),
                             {**basic(secrets["write_key"]), "Content-Type": "application/json"})
    assert status == 413
    assert stored() == (0, 0, 0, 0, 0)

    # A chunked body within the limits is read whole and recorded
    small = {"email": "dee@example.com", "type": "webinar_attended",
             "properties": {"notes": "z" * 200_000}}
    body, headers = signed(secrets["webhook"], None, raw=json.dumps(small).encode(),
                           msg_id="small")
    assert send_chunked(live_server, "/webhooks/website", body, headers)[0] == 202
    recorder.drain()
    [activity] = Activity.select()
    assert activity.properties["notes"] == "z" * 200_000


def test_a_gzip_body_over_the_limit_once_decompressed_is_a_413(app, secrets):
    message = {"userId": "u1", "event": "E", "properties": {"x": "0" * 600_000}}
    answer = app.test_client().post("/v1/track", data=gzip.compress(json.dumps(message).encode()),
                                    headers={**basic(secrets["write_key"]),
                                             "Content-Encoding": "gzip",
                                             "Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.json["error"]["message"] == "body over 512 KiB once decompressed"
    assert stored() == (0, 0, 0, 0, 0)


_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=8) | st.sampled_from(
    ["\x00", "\ud800", "\udfff", "a\ud83d", "\ud83d\ude00", "\\ud800", "\\u0000", "ok"])
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | _TEXT,
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=20)


def _has_unstorable(value) -> bool:
    if isinstance(value, str):
        return unstorable(value) is not None
    if isinstance(value, dict):
        return any(map(_has_unstorable, [*value, *value.values()]))
    return isinstance(value, list) and any(map(_has_unstorable, value))


@settings(max_examples=300, deadline=None)
@given(value=_JSON, ascii_only=st.booleans())
@example(value=["\udfff"], ascii_only=True)
@example(value={"\x00": 1}, ascii_only=True)
@example(value=["\ud83d", "ok"], ascii_only=True)
def test_parse_refuses_exactly_the_documents_holding_text_we_cannot_store(value, ascii_only):
    """The parser looks at strings only when the text may hold NUL or a lone surrogate: it
    must still refuse every document that holds one, however it was escaped, and no other."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    meant = json.loads(text)  # an escaped surrogate pair reads back as one character
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a raw lone surrogate: no UTF-8 sender can send it
        body = text.encode("utf-8", "surrogatepass")
    try:
        parsed = jsontext.parse(body)
    except jsontext.Unreadable:
        assert _has_unstorable(meant), text
    else:
        assert not _has_unstorable(meant) and parsed == meant, text


def read_by_the_standard_library(body: bytes):
    """What parse() answered before it read with orjson: its value, or its error."""
    with mock.patch.object(jsontext, "_may_hold_a_long_integer", lambda body: True):
        try:
            return jsontext.parse(body)
        except jsontext.Unreadable as exc:
            return f"Unreadable: {exc}"


_NUMBERS = (st.integers() | st.floats(allow_nan=False) | st.sampled_from(
    [2**63, -2**63 - 1, 2**64, 10**400, 1e308, 5e-324, -0.0]))
_BODIES = (st.recursive(_NUMBERS | _TEXT | st.none(), lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=20)
           .map(lambda value: json.dumps(value).encode()) | st.binary(max_size=40)
           | st.sampled_from([b"1e400", b"-1E+999", b"NaN", b"[Infinity]", b'{"a":1,"a":2}',
                              b"\xef\xbb\xbf{}", b"[" * 70 + b"]" * 70, b"[1,]", b'"\\ud800"',
                              b"12345678901234567890", b"1.5e3", b"\xff", b"1e-400",
                              b"[1.5e308, 2E+308]", b"123456789012345678e9", b'"e46543"',
                              b"-9223372036854775809"]))


@settings(max_examples=500, deadline=None)
@given(body=_BODIES)
def test_parse_reads_every_body_as_the_standard_library_does(body):
    """orjson reads most bodies (it is several times faster): for any body, the same value,
    or the same error, as the standard library alone."""
    try:
        value = jsontext.parse(body)
    except jsontext.Unreadable as exc:
        value = f"Unreadable: {exc}"
    expected = read_by_the_standard_library(body)
    assert value == expected and type(value) is type(expected)
    assert json.dumps(value) == json.dumps(expected)  # -0.0, and int against float, alike


@pytest.mark.parametrize("escape", ["\\uDFFF", "\\uD800", "\\u0000"])
def test_parse_refuses_upper_case_escapes_too(escape):  # as other encoders write them
    with pytest.raises(jsontext.Unreadable):
        jsontext.parse(f'["{escape}"]'.encode())
