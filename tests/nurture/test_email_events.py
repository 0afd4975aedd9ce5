"""Bounces and complaints from each provider, in their real shapes, verified their way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from service.core.models import EmailEvent, Suppression
from service.nurture.suppression import is_suppressed

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


@pytest.fixture(scope="module")
def sns_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def sendgrid_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def events_app(make_app, sns_key, sendgrid_key, tmp_path, monkeypatch):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(sns_key.public_key()).serial_number(1)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(sns_key, hashes.SHA256()))
    pem = tmp_path / "sns.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return make_app(**{
        "email_events.ses_topic_arns": [TOPIC], "email_events.ses_certificate_file": str(pem),
        "email_events.postmark_token": "pm-secret", "email_events.mailgun_signing_key":
        MAILGUN_KEY, "email_events.sendgrid_public_key": base64.b64encode(public).decode()})


def sns_envelope(key, message: dict, *, version="1", topic=TOPIC, tamper=False,
                 at: datetime | None = None) -> bytes:
    at = at or datetime.now(UTC)
    envelope = {
        "Type": "Notification", "MessageId": str(uuid.uuid4()),
        "TopicArn": topic, "Message": json.dumps(message),
        "Timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "SignatureVersion": version,
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService.pem",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe"}
    text = "".join(f"{k}\n{envelope[k]}\n" for k in
                   ("Message", "MessageId", "Timestamp", "TopicArn", "Type"))
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    envelope["Signature"] = base64.b64encode(
        key.sign(text.encode(), padding.PKCS1v15(), digest)).decode()
    if tamper:
        envelope["Message"] = envelope["Message"].replace("ann@", "eve@")
    return json.dumps(envelope).encode()


SES_BOUNCE = {
    "notificationType": "Bounce", "unknownField": {"nested": True},
    "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
               "bouncedRecipients": [
                   {"emailAddress": "ann@example.com", "action": "failed",
                    "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"},
                   {"emailAddress": "Bob@Example.com", "status": "5.1.1"}],
               "timestamp": "2026-11-23T11:59:58.000Z", "feedbackId": "0102-abc",
               "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"},
    "mail": {"timestamp": "2026-11-23T11:59:50.000Z", "messageId": "0102-def",
             "source": "leadbridge@example.com", "destination": ["ann@example.com"]}}


def post(app, provider, body: bytes, headers=None):
    return app.test_client().post(f"/webhooks/email-events/{provider}", data=body,
                                  headers={"Content-Type": "application/json",
                                           **(headers or {})})


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_with_several_recipients(events_app, sns_key, version):
    response = post(events_app, "ses", sns_envelope(sns_key, SES_BOUNCE, version=version),
                    {"x-amz-sns-message-type": "Notification"})
    assert response.status_code == 200 and response.json["events"]["hard_bounce"] == 2
    assert is_suppressed("ann@example.com") and is_suppressed("bob@example.com")
    assert EmailEvent.get(EmailEvent.email == "ann@example.com").raw["TopicArn"] == TOPIC


def test_ses_complaint_and_soft_bounces(events_app, sns_key):
    complaint = {"notificationType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "cat@example.com"}],
        "complaintFeedbackType": "abuse"}, "mail": {}}
    assert post(events_app, "ses", sns_envelope(sns_key, complaint)).status_code == 200
    assert Suppression.get().reason == "complaint"
    soft = {"notificationType": "Bounce", "bounce": {
        "bounceType": "Transient", "bounceSubType": "MailboxFull",
        "bouncedRecipients": [{"emailAddress": "dan@example.com"}]}}
    for expected in (False, False, True):
        post(events_app, "ses", sns_envelope(sns_key, soft))
        assert is_suppressed("dan@example.com") is expected


@pytest.mark.parametrize("change", ["tamper", "topic", "version"])
def test_ses_refuses_bad_signature_or_topic(events_app, sns_key, change):
    body = sns_envelope(sns_key, SES_BOUNCE, tamper=change == "tamper",
                        topic="arn:aws:sns:eu-west-1:999:other" if change == "topic" else TOPIC,
                        version="3" if change == "version" else "1")
    assert post(events_app, "ses", body).status_code == 401
    assert Suppression.select().count() == 0 and EmailEvent.select().count() == 0


def test_postmark(events_app):
    bounce = {"RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce",
              "TypeCode": 1, "Name": "Hard bounce", "Tag": "nurture",
              "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
              "ServerID": 23, "MessageStream": "broadcast",
              "Description": "The server was unable to deliver your message",
              "Details": "smtp;550 5.1.1 The email account does not exist.",
              "Email": "eve@example.com", "From": "leadbridge@example.com",
              "BouncedAt": "2026-11-23T12:00:00Z", "Inactive": True, "CanActivate": True}
    auth = {"Authorization": "Basic " + base64.b64encode(b"postmark:pm-secret").decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"postmark:guess").decode()}
    assert post(events_app, "postmark", json.dumps(bounce).encode(), wrong).status_code == 401
    assert post(events_app, "postmark", json.dumps(bounce).encode()).status_code == 401
    assert not is_suppressed("eve@example.com")
    assert post(events_app, "postmark", json.dumps(bounce).encode(), auth).status_code == 200
    assert is_suppressed("eve@example.com")
    spam = {"RecordType": "SpamComplaint", "Email": "fay@example.com", "Type": "SpamComplaint"}
    post(events_app, "postmark", json.dumps(spam).encode(), auth)
    assert Suppression.get(Suppression.email == "fay@example.com").reason == "complaint"


def mailgun_body(event: dict, *, key=MAILGUN_KEY, stamp=None, token=None) -> bytes:
    stamp = str(int(stamp or time.time()))
    token = token or secrets.token_hex(25)  # Mailgun's tokens are single-use, 50 characters
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": stamp, "token": token,
                                     "signature": signature},
                       "event-data": event}).encode()


def test_mailgun(events_app):
    failed = {"event": "failed", "severity": "permanent", "reason": "bounce",
              "recipient": "gus@example.com", "id": "G9Bn5sl1TC6nu79C8C0bwg",
              "timestamp": 1521233195.375624, "log-level": "error",
              "delivery-status": {"code": 550, "message": "No such user",
                                  "attempt-no": 1, "description": ""},
              "message": {"headers": {"message-id": "20130503182626.18666.16540@example.com"}}}
    assert post(events_app, "mailgun", mailgun_body(failed, key="wrong")).status_code == 401
    stale = mailgun_body(failed, stamp=time.time() - 3600)
    assert post(events_app, "mailgun", stale).status_code == 401
    assert not is_suppressed("gus@example.com")
    assert post(events_app, "mailgun", mailgun_body(failed)).status_code == 200
    assert is_suppressed("gus@example.com")
    temporary = {**failed, "severity": "temporary", "recipient": "hal@example.com"}
    answer = post(events_app, "mailgun", mailgun_body(temporary))
    assert answer.json["events"]["soft_bounce"] == 1 and not is_suppressed("hal@example.com")
    complained = {"event": "complained", "recipient": "ivy@example.com"}
    post(events_app, "mailgun", mailgun_body(complained))
    assert is_suppressed("ivy@example.com")


def test_sendgrid(events_app, sendgrid_key):
    events = [
        {"email": "jo@example.com", "timestamp": 1513299569, "event": "bounce",
         "type": "bounce", "reason": "550 5.1.1 unknown", "status": "5.1.1",
         "sg_event_id": "sg1", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001"},
        {"email": "kim@example.com", "event": "bounce", "type": "blocked", "reason": "421"},
        {"email": "lou@example.com", "event": "spamreport", "sg_event_id": "sg3"},
        {"email": "max@example.com", "event": "delivered", "response": "250 OK"},
        {"email": "ned@example.com", "event": "dropped", "reason": "Bounced Address"}]
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    signature = base64.b64encode(sendgrid_key.sign(stamp.encode() + body,
                                                   ec.ECDSA(hashes.SHA256()))).decode()
    headers = {"X-Twilio-Email-Event-Webhook-Signature": signature,
               "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
    bad = {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": str(int(stamp) + 1)}
    assert post(events_app, "sendgrid", body, bad).status_code == 401
    assert EmailEvent.select().count() == 0
    answer = post(events_app, "sendgrid", body, headers)
    assert answer.status_code == 200
    assert answer.json["events"] == {"hard_bounce": 1, "soft_bounce": 1, "complaint": 1,
                                     "other": 1}
    assert {s.email for s in Suppression.select()} == {"jo@example.com", "lou@example.com"}


def test_unknown_provider_and_malformed(events_app):
    assert post(events_app, "carrier-pigeon", b"{}").status_code == 404
    auth = {"Authorization": "Basic " + base64.b64encode(b"u:pm-secret").decode()}
    response = post(events_app, "postmark", b"{not json", auth)
    assert response.status_code == 400 and "not valid JSON" in response.json["error"]["message"]
