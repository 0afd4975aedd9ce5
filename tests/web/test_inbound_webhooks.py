"""Email forwarded by each provider's inbound webhook, in its documented payload, signed or
authenticated the provider's way: kept as an InboundEmail with its raw message; forged,
replayed, stale, oversized and unreadable requests refused, the refused ones kept unmatched."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from service.core.models import InboundEmail
from service.core.runtime import runtime
from service.web import inbound_mail
from tests.nurture.test_email_events import (  # noqa: F401 (events_app, sendgrid_key, sns_key: fixtures)
    MAILGUN_KEY,
    events_app,
    sendgrid_key,
    sns_envelope,
    sns_key,
)

INBOUND_TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-inbound"
POSTMARK_PASSWORD = "pm-inbound-secret"
SENDGRID_PASSWORD = "sg-inbound-secret"
REPLY = "Tuesday at 10 works for me, I will call them then."


@pytest.fixture
def inbound_app(events_app, make_app):  # noqa: F811
    """Every provider configured for both routes (the SNS certificate of events_app)."""
    events = runtime.settings.email_events
    return make_app(**{
        "email_events.ses_topic_arns": events.ses_topic_arns,
        "email_events.ses_certificate_file": events.ses_certificate_file,
        "email_events.postmark_token": "pm-secret", "email_events.mailgun_signing_key":
        MAILGUN_KEY, "email_events.sendgrid_public_key": events.sendgrid_public_key,
        "inbound.postmark_password": POSTMARK_PASSWORD,
        "inbound.sendgrid_password": SENDGRID_PASSWORD,
        "inbound.ses_topic_arns": [INBOUND_TOPIC]})


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def post(app, provider: str, **kwargs):
    return app.test_client().post(f"/webhooks/inbound/{provider}", **kwargs)


def only_email() -> InboundEmail:
    [email] = InboundEmail.select()
    return email


def raw_of(email: InboundEmail):
    return message_from_bytes(bytes(email.raw), policy=policy.default)


def assert_kept_unmatched(body: bytes, *words: str) -> None:
    email = only_email()
    assert email.status == "unmatched" and bytes(email.raw) == body
    assert all(word in email.reason for word in words), email.reason


# Postmark ---------------------------------------------------------------------------------

POSTMARK = {
    "FromName": "Riley Rep", "MessageStream": "inbound", "From": "riley.rep@example.com",
    "FromFull": {"Email": "riley.rep@example.com", "Name": "Riley Rep", "MailboxHash": ""},
    "To": "\"Leadbridge\" <reply+h1.abc@leads.example.com>",
    "ToFull": [{"Email": "reply+h1.abc@leads.example.com", "Name": "Leadbridge",
                "MailboxHash": "h1.abc"}],
    "Cc": "", "CcFull": [], "OriginalRecipient": "reply+h1.abc@leads.example.com",
    "Subject": "Re: New MQL: Ada Lovelace (Analytical Engines)",
    "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b", "ReplyTo": "",
    "MailboxHash": "h1.abc", "Date": "Mon, 23 Nov 2026 10:45:32 +0000",
    "TextBody": f"{REPLY}\n\nOn Mon, 23 Nov 2026 at 09:00, Leadbridge wrote:\n> New MQL",
    "HtmlBody": f"<html><body><p>{REPLY}</p></body></html>",
    "StrippedTextReply": REPLY, "Tag": "",
    "Headers": [
        {"Name": "X-Spam-Status", "Value": "No"}, {"Name": "X-Spam-Score", "Value": "-0.1"},
        {"Name": "Received-SPF",
         "Value": "Pass (sender SPF authorized) identity=mailfrom; client-ip=209.85.160.180"},
        {"Name": "MIME-Version", "Value": "1.0"},
        {"Name": "Message-ID", "Value": "<CAGXpo2Wk0@mail.gmail.com>"},
        {"Name": "In-Reply-To", "Value": "<handoff-1.abc@leads.example.com>"},
        {"Name": "References", "Value": "<handoff-1.abc@leads.example.com>"}],
    "Attachments": [{"Name": "notes.txt", "ContentType": "text/plain", "ContentLength": 45,
                     "Content": "VGhpcyBpcyBhdHRhY2htZW50IGNvbnRlbnRzLCBiYXNlLTY0IGVuY29kZWQu"}]}


def test_postmark_fields_become_the_message(inbound_app):
    answer = post(inbound_app, "postmark", json=POSTMARK,
                  headers=basic("postmark", POSTMARK_PASSWORD))
    assert answer.status_code == 200, answer.text
    email = only_email()
    assert answer.json == {"ok": True, "id": email.id, "status": email.status,
                           "duplicate": False}
    assert email.channel == "postmark" and email.from_address == "riley.rep@example.com"
    assert email.subject == POSTMARK["Subject"] and REPLY in email.text
    assert email.message_id == "<CAGXpo2Wk0@mail.gmail.com>"
    raw = raw_of(email)
    assert raw["In-Reply-To"] == "<handoff-1.abc@leads.example.com>"
    assert raw["To"] == "Leadbridge <reply+h1.abc@leads.example.com>"
    assert [a["name"] for a in email.attachments] == ["notes.txt"]  # noted, not kept:
    assert b"[attachment not kept: notes.txt" in bytes(email.raw)
    again = post(inbound_app, "postmark", json=POSTMARK,
                 headers=basic("postmark", POSTMARK_PASSWORD))
    assert again.json["duplicate"] is True and InboundEmail.select().count() == 1


def test_postmark_without_a_message_id_header_and_with_the_raw_email(inbound_app):
    auth = basic("any", POSTMARK_PASSWORD)
    bare = {**POSTMARK, "Headers": [], "Attachments": []}
    assert post(inbound_app, "postmark", json=bare, headers=auth).status_code == 200
    assert only_email().message_id == "<73e6d360-66eb-11e1-8e72-a8904824019b@mtasv.net>"
    InboundEmail.delete().execute()
    raw = (f"From: Riley Rep <riley.rep@example.com>\r\nTo: reply@leads.example.com\r\n"
           f"Subject: Re: hello\r\nMessage-ID: <raw-1@example.com>\r\n"
           f"Auto-Submitted: no\r\n\r\n{REPLY}\r\n")
    answer = post(inbound_app, "postmark", json={**POSTMARK, "RawEmail": raw}, headers=auth)
    assert answer.status_code == 200
    email = only_email()
    assert bytes(email.raw) == raw.encode() and email.message_id == "<raw-1@example.com>"


def test_postmark_forged_or_unreadable_is_kept_unmatched(inbound_app):
    body = json.dumps(POSTMARK).encode()
    json_type = {"Content-Type": "application/json"}
    for headers in ({**json_type, **basic("postmark", "guess")}, json_type):
        answer = post(inbound_app, "postmark", data=body, headers=headers)
        assert answer.status_code == 401
        assert "inbound.postmark_password" in answer.json["error"]["message"]
    assert_kept_unmatched(body, "inbound.postmark_password")  # kept once, by its bytes
    InboundEmail.delete().execute()
    answer = post(inbound_app, "postmark", data=b"{not json",
                  headers={**json_type, **basic("postmark", POSTMARK_PASSWORD)})
    assert answer.status_code == 400 and "not valid JSON" in answer.json["error"]["message"]
    assert_kept_unmatched(b"{not json", "cannot be read")


# Mailgun ----------------------------------------------------------------------------------

def mailgun_form(fields: dict, *, key=MAILGUN_KEY, stamp=None, token=None) -> dict:
    stamp = str(int(stamp or time.time()))
    token = token or secrets.token_hex(25)
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {**fields, "timestamp": stamp, "token": token, "signature": signature}


MAILGUN_HEADERS = [
    ["Received", "by luna.mailgun.net with SMTP mgrt 8734663311733; Mon, 23 Nov 2026 10:00:00"],
    ["Content-Type", ["multipart/mixed", {"boundary": "eb663d73ae0a4d6c9153cc0aec8b7520"}]],
    ["Mime-Version", "1.0"], ["Subject", "Re: New MQL: Ada Lovelace"],
    ["From", "Riley Rep <riley.rep@example.com>"], ["To", "reply+h1.abc@leads.example.com"],
    ["Message-Id", "<517ACC75.5010709@mail.example.com>"],
    ["In-Reply-To", "<handoff-1.abc@leads.example.com>"],
    ["X-Mailgun-Spf", "Pass"], ["X-Mailgun-Dkim-Check-Result", "Pass"],
    ["Date", "Mon, 23 Nov 2026 10:00:00 +0000"]]


def mailgun_fields(**extra) -> dict:
    return {"recipient": "reply+h1.abc@leads.example.com", "sender": "riley.rep@example.com",
            "from": "Riley Rep <riley.rep@example.com>", "subject": "Re: New MQL: Ada Lovelace",
            "body-plain": f"{REPLY}\n\n> New MQL", "stripped-text": REPLY,
            "body-html": f"<p>{REPLY}</p>", "message-headers": json.dumps(MAILGUN_HEADERS),
            "X-Mailgun-Spf": "Pass", "X-Mailgun-Dkim-Check-Result": "Pass", **extra}


def the_rep_reply(channel: str):
    """The one email kept, as the rep's reply came through this provider; it and the
    message rebuilt from the provider's fields."""
    email = only_email()
    assert email.channel == channel and email.from_address == "riley.rep@example.com"
    assert email.subject == "Re: New MQL: Ada Lovelace" and REPLY in email.text
    raw = raw_of(email)
    assert raw["In-Reply-To"] == "<handoff-1.abc@leads.example.com>"
    return email, raw


def test_mailgun_parsed_forward_with_an_attachment(inbound_app):
    form = mailgun_form(mailgun_fields(**{"attachment-count": "1"}))
    answer = post(inbound_app, "mailgun", data={
        **form, "attachment-1": (io.BytesIO(b"%PDF-1.4 quote"), "quote.pdf", "application/pdf")})
    assert answer.status_code == 200, answer.text
    email, raw = the_rep_reply("mailgun")
    assert raw["Message-Id"] == "<517ACC75.5010709@mail.example.com>"
    assert [(a["name"], a["size"]) for a in email.attachments] == [("quote.pdf", 14)]
    assert b"%PDF-1.4 quote" not in bytes(email.raw)


def test_mailgun_mime_forward(inbound_app):
    mime = (f"From: Riley Rep <riley.rep@example.com>\r\nTo: reply@leads.example.com\r\n"
            f"Subject: Re: hi\r\nMessage-ID: <mime-1@example.com>\r\n\r\n{REPLY}\r\n")
    form = mailgun_form({"recipient": "reply@leads.example.com", "body-mime": mime,
                         "sender": "riley.rep@example.com", "subject": "Re: hi"})
    assert post(inbound_app, "mailgun", data=form).status_code == 200
    email = only_email()
    assert bytes(email.raw) == mime.encode() and email.text == REPLY


def test_mailgun_token_is_used_once(inbound_app):
    form = mailgun_form(mailgun_fields())
    assert post(inbound_app, "mailgun", data=form).json["duplicate"] is False
    retry = post(inbound_app, "mailgun", data=form)  # the same delivery, a new boundary
    assert retry.status_code == 200 and retry.json == {
        "ok": True, "id": None, "status": None, "duplicate": True}
    other = {**form, "body-plain": "Send the money to this account", "message-headers": "[]"}
    replayed = post(inbound_app, "mailgun", data=other)
    assert replayed.status_code == 409 and "used already" in replayed.json["error"]["message"]
    assert InboundEmail.select().count() == 1


def test_mailgun_forged_or_stale_is_refused_and_kept(inbound_app):
    forged = mailgun_form(mailgun_fields(), key="key-not-ours")
    answer = post(inbound_app, "mailgun", data=forged)
    assert answer.status_code == 401 and "does not verify" in answer.json["error"]["message"]
    email = only_email()
    assert email.status == "unmatched" and "does not verify" in email.reason
    assert b"key-not-ours" not in bytes(email.raw) and forged["token"].encode() in bytes(email.raw)
    InboundEmail.delete().execute()
    stale = mailgun_form(mailgun_fields(), stamp=time.time() - 20 * 60)
    assert post(inbound_app, "mailgun", data=stale).status_code == 401
    assert "older than 15 minutes" in only_email().reason
    InboundEmail.delete().execute()
    unreadable = mailgun_form(mailgun_fields(**{"message-headers": "[[1, "}))
    answer = post(inbound_app, "mailgun", data=unreadable)
    assert answer.status_code == 400 and "message-headers" in answer.json["error"]["message"]
    assert "cannot be read" in only_email().reason


def test_mailgun_forged_with_a_binary_attachment_is_kept(inbound_app):
    """The payload kept as the raw message holds the attachment's bytes, NUL included."""
    forged = mailgun_form(mailgun_fields(), key="key-not-ours")
    answer = post(inbound_app, "mailgun", data={
        **forged, "attachment-1": (io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\x00"), "a.png",
                                   "image/png")})
    assert answer.status_code == 401
    email = only_email()
    assert email.status == "unmatched" and b"\x89PNG\r\n\x1a\n\x00\x00" in bytes(email.raw)


def test_mailgun_failed_sender_checks_are_passed_on(inbound_app):
    form = mailgun_form(mailgun_fields(**{"X-Mailgun-Spf": "Fail",
                                          "X-Mailgun-Dkim-Check-Result": "Fail"}))
    with inbound_app.test_request_context("/webhooks/inbound/mailgun", method="POST",
                                          data=form):
        mail = inbound_mail.mailgun(b"", runtime.settings)
    assert mail.authentication == "spf=fail, dkim=fail"
    with inbound_app.test_request_context("/webhooks/inbound/mailgun", method="POST",
                                          data=mailgun_form(mailgun_fields())):
        assert inbound_mail.mailgun(b"", runtime.settings).authentication == ""


# SendGrid Inbound Parse -------------------------------------------------------------------

SENDGRID_HEADERS = (
    "Received: by mx0047p1mdw1.sendgrid.net with SMTP id 6WCVv7KAWn Mon, 23 Nov 2026 "
    "10:53:06 +0000 (UTC)\n"
    "Received: from mail-io0-f169.google.com (mail-io0-f169.google.com [209.85.223.169])\n"
    "\tby mx0047p1mdw1.sendgrid.net (Postfix) with ESMTPS id AA9FFA817F2\n"
    "MIME-Version: 1.0\n"
    "From: Riley Rep <riley.rep@example.com>\n"
    "Date: Mon, 23 Nov 2026 10:53:05 -0000\n"
    "Message-ID: <CAN_P_JMvV7ZpAQhOnDienypLrJmuhN=LQWweu4yScw4jQyXY2w@mail.gmail.com>\n"
    "In-Reply-To: <handoff-1.abc@leads.example.com>\n"
    "Subject: Re: New MQL: Ada Lovelace\n"
    "To: reply+h1.abc@leads.example.com\n"
    "Content-Type: multipart/alternative; boundary=001a113df448cad2d00538a3cef7\n")


def sendgrid_fields(**extra) -> dict:
    return {"headers": SENDGRID_HEADERS, "dkim": "{@example.com : pass}",
            "to": "reply+h1.abc@leads.example.com", "from": "Riley Rep <riley.rep@example.com>",
            "text": f"{REPLY}\n\nOn Mon, Leadbridge wrote:\n> New MQL",
            "html": f"<div>{REPLY}</div>", "sender_ip": "209.85.223.169",
            "envelope": json.dumps({"to": ["reply+h1.abc@leads.example.com"],
                                    "from": "riley.rep@example.com"}),
            "subject": "Re: New MQL: Ada Lovelace", "spam_score": "0.1", "SPF": "pass",
            "charsets": json.dumps({"to": "UTF-8", "html": "UTF-8", "subject": "UTF-8",
                                    "from": "UTF-8", "text": "UTF-8"}), **extra}


def test_sendgrid_parsed_post(inbound_app):
    fields = sendgrid_fields(attachments="1", **{"attachment-info": json.dumps(
        {"attachment1": {"filename": "deck.pdf", "name": "deck.pdf", "type": "application/pdf"}})})
    answer = post(inbound_app, "sendgrid", headers=basic("inbound", SENDGRID_PASSWORD), data={
        **fields, "attachment1": (io.BytesIO(b"%PDF deck"), "deck.pdf", "application/pdf")})
    assert answer.status_code == 200, answer.text
    email, raw = the_rep_reply("sendgrid")
    assert len(raw.get_all("Received")) == 2
    assert [a["name"] for a in email.attachments] == ["deck.pdf"]
    assert b"[attachment not kept: deck.pdf" in bytes(email.raw)


def test_sendgrid_raw_post_and_forged_password(inbound_app):
    mime = (f"From: riley.rep@example.com\r\nTo: reply@leads.example.com\r\nSubject: Re: x\r\n"
            f"Message-ID: <sg-raw@example.com>\r\n\r\n{REPLY}\r\n")
    fields = {"email": mime, "to": "reply@leads.example.com", "SPF": "pass"}
    forged = post(inbound_app, "sendgrid", data=fields, headers=basic("inbound", "guess"))
    assert forged.status_code == 401
    assert "inbound.sendgrid_password" in only_email().reason
    InboundEmail.delete().execute()
    answer = post(inbound_app, "sendgrid", data=fields,
                  headers=basic("inbound", SENDGRID_PASSWORD))
    assert answer.status_code == 200 and bytes(only_email().raw) == mime.encode()
    with inbound_app.test_request_context("/webhooks/inbound/sendgrid", method="POST", data={
            **fields, "SPF": "fail"}, headers=basic("inbound", SENDGRID_PASSWORD)):
        assert inbound_mail.sendgrid(b"", runtime.settings).authentication == "spf=fail"


# Amazon SES through SNS -------------------------------------------------------------------

SES_MIME = ("Return-Path: <riley.rep@example.com>\r\n"
            "Received: from mail.example.com by inbound-smtp.eu-west-1.amazonaws.com\r\n"
            "From: Riley Rep <riley.rep@example.com>\r\nTo: reply+h1.abc@leads.example.com\r\n"
            "Subject: Re: New MQL: Ada Lovelace\r\nMessage-ID: <ses-1@mail.example.com>\r\n"
            "In-Reply-To: <handoff-1.abc@leads.example.com>\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=UTF-8\r\n\r\n{REPLY}\r\n")


def ses_received(content: str = SES_MIME, encoding="UTF8", **verdicts) -> dict:
    status = {name: {"status": verdicts.get(name, "PASS")}
              for name in ("spam", "virus", "spf", "dkim", "dmarc")}
    return {
        "notificationType": "Received",
        "mail": {"timestamp": "2026-11-23T10:00:01.000Z", "source": "riley.rep@example.com",
                 "messageId": "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1",
                 "destination": ["reply+h1.abc@leads.example.com"], "headersTruncated": False,
                 "commonHeaders": {"returnPath": "riley.rep@example.com",
                                   "from": ["Riley Rep <riley.rep@example.com>"],
                                   "to": ["reply+h1.abc@leads.example.com"],
                                   "messageId": "<ses-1@mail.example.com>",
                                   "subject": "Re: New MQL: Ada Lovelace"}},
        "receipt": {"timestamp": "2026-11-23T10:00:01.000Z", "processingTimeMillis": 406,
                    "recipients": ["reply+h1.abc@leads.example.com"],
                    **{f"{name}Verdict": value for name, value in status.items()},
                    "action": {"type": "SNS", "topicArn": INBOUND_TOPIC,
                               "encoding": encoding}},
        "content": content}


def ses_post(app, body: bytes):
    return post(app, "ses", data=body, headers={"Content-Type": "text/plain; charset=UTF-8",
                                                "x-amz-sns-message-type": "Notification"})


@pytest.mark.parametrize(("version", "encoding"), [("1", "UTF8"), ("2", "BASE64")])
def test_ses_receipt_through_sns(inbound_app, sns_key, version, encoding):  # noqa: F811
    content = base64.b64encode(SES_MIME.encode()).decode() if encoding == "BASE64" else SES_MIME
    body = sns_envelope(sns_key, ses_received(content, encoding), version=version,
                        topic=INBOUND_TOPIC)
    answer = ses_post(inbound_app, body)
    assert answer.status_code == 200, answer.text
    email = only_email()
    assert email.channel == "ses" and bytes(email.raw) == SES_MIME.encode()
    assert email.from_address == "riley.rep@example.com" and email.text == REPLY
    replayed = ses_post(inbound_app, body)
    assert replayed.status_code == 200 and replayed.json["duplicate"] is True
    assert InboundEmail.select().count() == 1


@pytest.mark.parametrize("change", ["topic", "tamper", "stale"])
def test_ses_forged_or_stale_is_refused_and_kept(inbound_app, sns_key, change):  # noqa: F811
    message = ses_received(SES_MIME.replace("Riley", "ann@"))
    body = sns_envelope(sns_key, message, tamper=change == "tamper",
                        topic="arn:aws:sns:eu-west-1:123456789012:ses-bounces"
                        if change == "topic" else INBOUND_TOPIC,
                        at=datetime.now(UTC) - timedelta(hours=2) if change == "stale" else None)
    answer = ses_post(inbound_app, body)
    assert answer.status_code == 401
    reason = {"topic": "inbound.ses_topic_arns", "tamper": "does not verify",
              "stale": "minutes from now"}[change]
    assert reason in answer.json["error"]["message"]
    assert_kept_unmatched(body, reason)


def test_ses_virus_garbage_and_failed_checks(inbound_app, sns_key):  # noqa: F811
    virus = ses_post(inbound_app, sns_envelope(sns_key, ses_received(virus="FAIL"),
                                               topic=INBOUND_TOPIC))
    assert virus.status_code == 200
    email = only_email()
    assert email.status == "unmatched" and email.reason == "virus"
    InboundEmail.delete().execute()
    no_content = sns_envelope(sns_key, {**ses_received(), "content": None}, topic=INBOUND_TOPIC)
    answer = ses_post(inbound_app, no_content)
    assert answer.status_code == 400 and "no content" in answer.json["error"]["message"]
    assert_kept_unmatched(no_content, "no content")
    InboundEmail.delete().execute()
    assert ses_post(inbound_app, b"\xffgarbage").status_code == 400
    assert_kept_unmatched(b"\xffgarbage", "cannot be read")
    InboundEmail.delete().execute()
    assert ses_post(inbound_app, b"\x00garbage").status_code == 400  # the app's door: NUL
    with inbound_app.test_request_context("/webhooks/inbound/ses", method="POST", data=b""):
        for verdicts, expected in (({"dmarc": "FAIL"}, "dmarc=fail"),
                                   ({"spf": "FAIL", "dkim": "FAIL"}, "spf=fail, dkim=fail"),
                                   ({"spf": "FAIL"}, "")):
            body = sns_envelope(sns_key, ses_received(**verdicts), topic=INBOUND_TOPIC)
            assert inbound_mail.ses(body, runtime.settings).authentication == expected


def test_ses_subscription_confirmation(inbound_app, sns_key, caplog):  # noqa: F811
    envelope = {"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c",
                "Token": "2336412f37", "TopicArn": INBOUND_TOPIC,
                "Message": "You have chosen to subscribe to the topic.",
                "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
                "Timestamp": datetime.now(UTC).isoformat(), "SignatureVersion": "2"}
    text = "".join(f"{k}\n{envelope[k]}\n" for k in ("Message", "MessageId", "SubscribeURL",
                                                      "Timestamp", "Token", "TopicArn", "Type"))
    envelope["Signature"] = base64.b64encode(sns_key.sign(
        text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    answer = ses_post(inbound_app, json.dumps(envelope).encode())
    assert answer.status_code == 200 and answer.json["status"] == "subscription_confirmation"
    assert "ConfirmSubscription" in caplog.text and InboundEmail.select().count() == 0


# Every provider ---------------------------------------------------------------------------

def test_unknown_provider(inbound_app):
    answer = post(inbound_app, "carrier-pigeon", json={})
    assert answer.status_code == 404 and "postmark" in answer.json["error"]["message"]
    assert InboundEmail.select().count() == 0


def test_messages_larger_than_the_app_limit_within_the_inbound_limit(inbound_app):
    big = base64.b64encode(b"\x89PNG" + bytes(1_500_000)).decode()  # 2 MiB of base64
    record = {**POSTMARK, "Attachments": [{"Name": "scan.png", "ContentType": "image/png",
                                           "Content": big}]}
    answer = post(inbound_app, "postmark", json=record,
                  headers=basic("postmark", POSTMARK_PASSWORD))
    assert answer.status_code == 200, answer.text
    mime = (f"From: riley.rep@example.com\r\nSubject: big\r\n\r\n{'x' * 78}\r\n" * 9000)
    form = mailgun_form({"recipient": "reply@leads.example.com", "body-mime": mime})
    assert len(mime) > 600_000  # over the 500 kB a form field may hold by default
    assert post(inbound_app, "mailgun", data=form).status_code == 200
    assert InboundEmail.select().count() == 2


def test_oversized_is_refused(make_app):
    app = make_app(**{"inbound.postmark_password": POSTMARK_PASSWORD,
                      "inbound.max_message_kib": 64})
    body = json.dumps({**POSTMARK, "TextBody": "x" * 100_000}).encode()
    for extra in ({}, {"Transfer-Encoding": "chunked"}):
        answer = app.test_client().post(
            "/webhooks/inbound/postmark", data=body, headers={
                "Content-Type": "application/json", **basic("p", POSTMARK_PASSWORD), **extra},
            environ_overrides={"wsgi.input_terminated": True} if extra else {})
        assert answer.status_code == 413
        assert "body over" in answer.json["error"]["message"]
    assert InboundEmail.select().count() == 0
    fits = json.dumps({**POSTMARK, "TextBody": "x" * 60_000}).encode()
    assert app.test_client().post("/webhooks/inbound/postmark", data=fits, headers={
        "Content-Type": "application/json", **basic("p", POSTMARK_PASSWORD)}).status_code == 200


# Through to the thread ------------------------------------------------------------------

@pytest.fixture
def handoff_email(inbound_app):
    """Riley's handoff email, its Message-ID the one the payloads above answer."""
    from service.core.models import HandoffMessage, OutboxEmail, Rep
    from tests.factories import promoted
    riley = Rep.create(email="riley.rep@example.com", name="Riley Rep")
    promoted(riley, "ada@example.com", at=datetime.now(UTC))
    OutboxEmail.update(message_id="<handoff-1.abc@leads.example.com>").execute()
    return HandoffMessage


def test_a_providers_reply_goes_on_the_thread_unless_its_sender_failed(inbound_app,
                                                                        handoff_email):
    answer = post(inbound_app, "postmark", json=POSTMARK,
                  headers=basic("postmark", POSTMARK_PASSWORD))
    assert answer.json.get("status") == "posted", answer.json
    assert handoff_email.get().body == REPLY
    spoofed = mailgun_form(mailgun_fields(**{"X-Mailgun-Spf": "Fail",
                                             "X-Mailgun-Dkim-Check-Result": "Fail"}))
    answer = post(inbound_app, "mailgun", data=spoofed)
    assert answer.json["status"] == "held", answer.json
    assert "spf=fail" in InboundEmail.get_by_id(answer.json["id"]).reason
    assert handoff_email.select().count() == 1


def test_a_forged_request_cannot_shadow_the_genuine_email(inbound_app, handoff_email):
    forged = post(inbound_app, "postmark", json={**POSTMARK, "TextBody": "Give it to me"},
                  headers=basic("postmark", "guess"))
    assert forged.status_code == 401
    genuine = post(inbound_app, "postmark", json=POSTMARK,
                   headers=basic("postmark", POSTMARK_PASSWORD))
    assert genuine.json["duplicate"] is False and genuine.json["status"] == "posted"
    assert [e.status for e in InboundEmail.select().order_by(InboundEmail.id)] == [
        "unmatched", "posted"]


def test_refused_requests_are_kept_cut_and_at_most_sixty_a_minute(inbound_app):
    for number in range(inbound_mail.REFUSED_PER_MINUTE + 2):
        answer = post(inbound_app, "postmark", data=str(number).encode() + b"x" * 300_000,
                      headers={**basic("postmark", "guess"), "Content-Type": "text/plain"})
        assert answer.status_code == 401
    kept = list(InboundEmail.select())
    assert len(kept) == inbound_mail.REFUSED_PER_MINUTE
    assert {len(bytes(email.raw)) for email in kept} == {inbound_mail.REFUSED_KEPT}


def test_a_provider_not_set_up_reads_and_keeps_nothing(make_app):
    app = make_app()
    for provider in ("postmark", "mailgun", "sendgrid", "ses"):
        answer = post(app, provider, json=POSTMARK, headers=basic("postmark", "guess"))
        assert answer.status_code == 404 and "not set up" in answer.json["error"]["message"]
    assert InboundEmail.select().count() == 0


def test_a_signing_certificate_url_that_is_a_path_is_refused(make_app, sns_key):  # noqa: F811
    app = make_app(**{"inbound.ses_topic_arns": [INBOUND_TOPIC]})  # no certificate file
    for path in ("/nonexistent", "/etc/hostname", "file:///etc/hostname"):
        envelope = json.loads(sns_envelope(sns_key, {"notificationType": "Received"},
                                           topic=INBOUND_TOPIC))
        envelope["SigningCertURL"] = path
        answer = post(app, "ses", data=json.dumps(envelope).encode(),
                      headers={"Content-Type": "text/plain"})
        assert answer.status_code == 401, (path, answer.text)
