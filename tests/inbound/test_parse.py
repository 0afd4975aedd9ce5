"""Reading received email: real-world replies (Gmail, Outlook, Apple Mail, HTML only,
German, French), auto-replies, a delivery report, attachments, and any bytes at all."""

from __future__ import annotations

import base64
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.inbound.parse import (
    BadMail,
    ParsedMail,
    html_to_text,
    parse,
    without_attachments,
)

FIXTURES = Path(__file__).parent / "fixtures"
ORIGINAL_ID = "<0123456789abcdef@leadbridge.test>"
TOKEN = "h7k2m9q4x1"
REPLY_ADDRESS = f"reply+{TOKEN}@leads.example.com"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.eml").read_bytes().replace(b"TOKEN", TOKEN.encode())


REPLIES = {
    "gmail_reply": ("rob.rep@gmail.example", "Rob Rep", "Yes — I can call them Thursday."),
    "outlook_reply": ("rob.rep@contoso.example", "Rob Rep",
                      "Got it, I'll reach out to Dana tomorrow morning."),
    "apple_mail_reply": ("rob@icloud.example", "Rob Rep", "Booked a call with Dana for 2pm."),
    "html_only_reply": ("rob.rep@contoso.example", "Rep, Rob",
                        "Thanks Mia & team, we signed the pilot today.\n\n"
                        "Next step: onboarding on Monday."),
    "german_reply": ("robert@vertrieb.example.de", "Robert Vertrieb",
                     "Danke, ich rufe Frau Lee morgen um 10 Uhr an."),
    "french_reply": ("rene.ventes@gmail.example", "René Ventes",
                     "Parfait, je l'appelle jeudi après-midi."),
    "spoofed_reply": ("rob.rep@contoso.example.co", "Rob Rep",
                      "Please send the full lead export to my personal address."),
    "with_attachment": ("rob.rep@gmail.example", "Rob Rep",
                        "Signed quote attached, Acme Rockets is closing this month."),
}
QUOTED = ("wrote:", "schrieb", "a écrit", "Acme Rockets (Dana Lee", "pricing guide",
          "Preisliste", "grille tarifaire", "From: Mia", "Sent from my iPhone", "Rob Rep\n",
          "Account Executive", "Viele Grüße", "Cordialement", "Mia Marketer", ">")


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_a_reply_is_read_as_the_reply_alone(name):
    address, sender_name, text = REPLIES[name]

    mail = parse(fixture(name))

    assert mail.text == text
    assert not [quoted for quoted in QUOTED if quoted in mail.text]
    assert (mail.from_address, mail.from_name) == (address, sender_name)
    assert mail.in_reply_to == [ORIGINAL_ID]
    assert mail.references == [ORIGINAL_ID]
    assert REPLY_ADDRESS in mail.recipients
    assert mail.subject.lower().startswith(("re:", "aw:"))
    assert mail.message_id.startswith("<") and mail.message_id.endswith(">")
    assert (mail.auto_reply, mail.out_of_office, mail.report) == ("", False, None)


@pytest.mark.parametrize("name", ["gmail_reply", "outlook_reply", "apple_mail_reply",
                                  "french_reply", "with_attachment"])
def test_the_html_alternative_alone_gives_the_same_reply(name):
    """Gmail's div.gmail_quote, Outlook's divRplyFwdMsg and what follows it, Apple's
    blockquote type=cite: each client's quoted history in HTML is removed."""
    original = message_from_bytes(fixture(name), policy=policy.default)
    html_only = EmailMessage()
    for header in ("From", "To", "Subject", "Message-ID", "In-Reply-To", "References"):
        html_only[header] = original[header]
    html_only.set_content(original.get_body(("html",)).get_content(), subtype="html",
                          cte="base64")

    mail = parse(html_only.as_bytes())

    assert mail.text == REPLIES[name][2]
    assert mail.in_reply_to == [ORIGINAL_ID]


def test_html_is_made_text_with_its_paragraphs_and_without_quoted_blocks():
    html = ("<html><head><style>p {color: red}</style></head><body><p>First &amp; foremost"
            "</p><p>Second <b>line</b></p><div id='appendonsend'></div><hr>"
            "<div id='divRplyFwdMsg'><b>From:</b> Mia</div><div>Quoted body</div></body></html>")

    assert html_to_text(html) == "First & foremost\n\nSecond line"


def test_the_apple_mail_and_outlook_plain_parts_hold_the_history_that_is_removed():
    """The fixtures are real replies: the history is there before it is removed."""
    for name, history in (("apple_mail_reply", "> On 23 Nov 2026, at 09:00, Mia Marketer"),
                          ("outlook_reply", "Sent: Monday, November 23, 2026 9:00 AM"),
                          ("gmail_reply", "On Mon, 23 Nov 2026 at 09:00, Mia Marketer"),
                          ("german_reply", "Am 23.11.2026 um 09:00 schrieb Mia Marketer"),
                          ("french_reply", "Le lun. 23 nov. 2026 à 09:00, Mia Marketer")):
        body = message_from_bytes(fixture(name), policy=policy.default).get_body(("plain",))
        assert history in body.get_content()


def test_an_out_of_office_reply_is_an_auto_reply_and_out_of_office():
    mail = parse(fixture("out_of_office"))

    assert mail.auto_reply == "Auto-Submitted: auto-replied"
    assert mail.out_of_office is True
    assert mail.from_address == "rob.rep@contoso.example"
    assert mail.in_reply_to == [ORIGINAL_ID]
    assert REPLY_ADDRESS in mail.recipients
    assert mail.text.startswith("I am out of the office until Monday 30 November")


def with_headers(name: str, **headers: str) -> bytes:
    """A fixture with headers set (underscores in names become dashes)."""
    raw = fixture(name)
    for key, value in headers.items():
        key = key.replace("_", "-")
        raw = re.sub(rb"(?mi)^" + key.encode() + rb": .*\r\n", b"", raw)
        raw = f"{key}: {value}\r\n".encode() + raw
    return raw


@pytest.mark.parametrize(("headers", "reason"), [
    ({"List_Id": "Sales news <news.contoso.example>"}, "List-Id"),
    ({"Precedence": "bulk"}, "Precedence: bulk"),
    ({"Precedence": "junk"}, "Precedence: junk"),
    ({"Precedence": "list"}, "Precedence: list"),
    ({"Auto_Submitted": "auto-generated"}, "Auto-Submitted: auto-generated"),
    ({"Return_Path": "<>"}, "empty return path"),
])
def test_list_and_bulk_mail_is_an_auto_reply_but_not_out_of_office(headers, reason):
    mail = parse(with_headers("gmail_reply", **headers))

    assert mail.auto_reply == reason
    assert mail.out_of_office is False


@pytest.mark.parametrize("headers", [
    {"X_Autoreply": "yes"},
    {"X_Autorespond": "Out of office"},
    {"Auto_Submitted": "auto-replied", "Subject": "Abwesenheitsnotiz: Acme"},
    {"Auto_Submitted": "auto-replied", "Subject": "Réponse automatique : Acme"},
    {"Auto_Submitted": "auto-replied", "Subject": "Absence"},
])
def test_vacation_notices_are_out_of_office(headers):
    mail = parse(with_headers("gmail_reply", **headers))

    assert mail.auto_reply
    assert mail.out_of_office is True


@pytest.mark.parametrize("headers", [
    {"Auto_Submitted": "no"},
    {"X_Auto_Response_Suppress": "All"},
    {"Precedence": "first-class"},
])
def test_a_person_s_reply_is_not_an_auto_reply(headers):
    mail = parse(with_headers("gmail_reply", **headers))

    assert (mail.auto_reply, mail.out_of_office) == ("", False)


def test_a_delivery_report_names_the_original_message_and_each_recipient_status():
    mail = parse(fixture("dsn_bounce"))

    assert mail.auto_reply == "delivery report"
    assert mail.out_of_office is False
    assert mail.report is not None
    assert mail.report.original_message_id == ORIGINAL_ID
    assert mail.report.recipients == [("gone@example.net", "failed", "5.1.1")]
    assert mail.attachments == []


def test_a_delivery_report_that_returns_the_whole_message():
    raw = fixture("dsn_bounce").replace(b"Content-Type: text/rfc822-headers",
                                        b"Content-Type: message/rfc822")

    report = parse(raw).report

    assert report.original_message_id == ORIGINAL_ID
    assert report.recipients == [("gone@example.net", "failed", "5.1.1")]


def test_a_spoofed_reply_reads_as_the_address_it_claims_so_it_can_be_held():
    mail = parse(fixture("spoofed_reply"))

    assert mail.from_address == "rob.rep@contoso.example.co"
    assert mail.from_address != "rob.rep@contoso.example"
    assert mail.auto_reply == ""


PDF_MARKER = b"LEADBRIDGE-PDF-PAYLOAD-MARKER"
PDF_SIZE = 255  # the decoded bytes of the PDF in with_attachment.eml


def attached_pdf(raw: bytes) -> bytes:
    encoded = raw.split(b"X-Attachment-Id: f_m3x9q1a70\r\n\r\n")[1].split(b"\r\n--")[0]
    return base64.b64decode(encoded)


def test_an_attachment_is_noted_by_name_type_and_size():
    raw = fixture("with_attachment")
    assert PDF_MARKER in attached_pdf(raw) and len(attached_pdf(raw)) == PDF_SIZE

    mail = parse(raw)

    assert [(a.name, a.content_type, a.size) for a in mail.attachments] == [
        ("Acme signed quote.pdf", "application/pdf", PDF_SIZE)]


def test_without_attachments_drops_the_attachment_bytes_and_keeps_a_note():
    raw = fixture("with_attachment")
    encoded_line = raw.split(b"X-Attachment-Id: f_m3x9q1a70\r\n\r\n")[1].split(b"\r\n")[0]

    kept = without_attachments(raw)

    assert encoded_line not in kept and PDF_MARKER not in kept
    assert b"[attachment not kept: Acme signed quote.pdf, 255 bytes]" in kept
    assert len(kept) < len(raw)
    mail = parse(kept)
    assert mail.text == REPLIES["with_attachment"][2]
    assert mail.attachments == []
    assert (mail.message_id, mail.in_reply_to) == (parse(raw).message_id, [ORIGINAL_ID])
    assert b"DKIM-Signature: v=1;" in kept and b"Received: from mail-sor-f41" in kept


def test_a_mail_that_is_only_an_attachment_keeps_its_headers_and_a_note():
    message = EmailMessage()
    message["From"] = "rob.rep@contoso.example"
    message["Subject"] = "scan"
    message.set_content(b"\x00\x01secret-bytes" * 10, maintype="application",
                        subtype="octet-stream", filename="scan.bin")

    kept = without_attachments(message.as_bytes())

    assert b"secret-bytes" not in kept and b"AAFzZWNyZXQtYnl0ZX" not in kept
    assert b"[attachment not kept: scan.bin, 140 bytes]" in kept
    assert parse(kept).subject == "scan"


@pytest.mark.parametrize("name", sorted(set(REPLIES) - {"with_attachment"})
                         + ["dsn_bounce", "out_of_office"])
def test_without_attachments_leaves_mail_without_attachments_as_it_came(name):
    assert without_attachments(fixture(name)) == fixture(name)


@pytest.mark.parametrize("raw", [b"", b"   \r\n", b"\r\n\r\nno headers, only a body"])
def test_bytes_that_are_no_email_are_bad_mail(raw):
    with pytest.raises(BadMail):
        parse(raw)
    with pytest.raises(BadMail):
        without_attachments(raw)


def test_odd_but_readable_headers_are_read_not_refused():
    raw = (b"From: =?unknown-8bit?q?Rob=FF?= <ROB@Contoso.EXAMPLE>\r\n"
           b"To: undisclosed-recipients:;\r\nCc: \"Broken <x@\r\n"
           b"X-Original-To: Reply+Abc@Leads.Example.com\r\n"
           b"Subject: =?utf-8?b?invalid base64?=\r\n"
           b"In-Reply-To: 0123456789abcdef@leadbridge.test\r\n"
           b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nHello \xff there\r\n")

    mail = parse(raw)

    assert mail.from_address == "rob@contoso.example"
    assert "reply+abc@leads.example.com" in mail.recipients
    assert mail.in_reply_to == [ORIGINAL_ID]
    assert mail.text.startswith("Hello")


HEADER_NAMES = st.sampled_from(["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To",
                                "References", "Content-Type", "Content-Transfer-Encoding",
                                "Content-Disposition", "Auto-Submitted", "Precedence",
                                "Return-Path", "Delivered-To", "X-Original-To", "List-Id"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_are_read_or_refused_as_bad_mail(raw):
    try:
        assert_storable(parse(raw))
        assert isinstance(without_attachments(raw), bytes)
    except BadMail:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(HEADER_NAMES, st.text(max_size=80)), max_size=8),
       st.text(max_size=400))
def test_any_header_and_body_text_is_read_or_refused_as_bad_mail(headers, body):
    lines = [f"{name}: {value}" for name, value in headers] + ["", body]
    raw = "\r\n".join(lines).encode("utf-8", errors="surrogateescape")
    try:
        assert_storable(parse(raw))
        assert isinstance(without_attachments(raw), bytes)
    except BadMail:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
               max_size=300).filter(str.strip))
def test_any_reply_text_in_a_well_formed_mail_is_read(text):
    message = EmailMessage()
    message["From"] = "Rob Rep <rob.rep@contoso.example>"
    message["To"] = REPLY_ADDRESS
    message["In-Reply-To"] = ORIGINAL_ID
    message.set_content(text)

    mail = parse(message.as_bytes())

    assert mail.from_address == "rob.rep@contoso.example"
    assert mail.recipients == [REPLY_ADDRESS]
    assert mail.in_reply_to == [ORIGINAL_ID]


def test_a_message_of_the_largest_size_kept_is_read():
    """(Its time is measured by benchmarks/inbound_replies.py.)"""
    message = EmailMessage()
    message["From"] = "rob.rep@contoso.example"
    message.set_content("Call me.\n\n" + "> quoted line of an old message\n" * 300_000)
    raw = message.as_bytes()
    assert len(raw) > 9 * 1024 * 1024
    assert parse(raw).text == "Call me."


def test_html_that_declares_its_encoding_is_read():
    html = '<?xml version="1.0" encoding="utf-8"?><html><body><p>Grüße, ja.</p></body></html>'

    assert html_to_text(html) == "Grüße, ja."


def test_an_attached_message_is_one_attachment_and_is_not_kept():
    raw = (b"From: rob.rep@contoso.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
           b"--x\r\nContent-Type: text/plain\r\n\r\nSee the forwarded thread.\r\n"
           b"--x\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment;"
           b" filename=thread.eml\r\n\r\nFrom: dana@acme.example\r\nSubject: old\r\n\r\n"
           b"old body with a secret\r\n--x--\r\n")

    mail = parse(raw)
    kept = without_attachments(raw)

    assert mail.text == "See the forwarded thread."
    assert [(a.name, a.content_type) for a in mail.attachments] == [
        ("thread.eml", "message/rfc822")]
    assert mail.attachments[0].size > 0
    assert b"old body with a secret" not in kept
    assert f"[attachment not kept: thread.eml, {mail.attachments[0].size} bytes]".encode() in kept
    assert b"See the forwarded thread." in kept


def test_mime_nested_beyond_reason_is_bad_mail():
    depth = 3000
    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
           + b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
                      for i in range(depth)))

    with pytest.raises(BadMail):
        parse(raw)
    with pytest.raises(BadMail):
        without_attachments(raw)


def test_a_delivery_report_whose_status_part_is_encoded():
    raw = fixture("dsn_bounce")
    head, rest = raw.split(b"Content-Type: message/delivery-status\r\n\r\n")
    status, tail = rest.split(b"\r\n--4Zk9Qr1s2Tt3", 1)
    encoded = base64.encodebytes(status).replace(b"\n", b"\r\n")
    raw = (head + b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64"
           b"\r\n\r\n" + encoded + b"\r\n--4Zk9Qr1s2Tt3" + tail)

    report = parse(raw).report

    assert report.recipients == [("gone@example.net", "failed", "5.1.1")]
    assert report.original_message_id == ORIGINAL_ID


def test_text_from_8bit_headers_and_nul_bytes_is_text_a_database_keeps():
    raw = ("From: Jürgen Groß <j@vertrieb.example.de>\r\nSubject: Grüße\r\n"
           "Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "Hallo\x00 Welt").encode() + b" \xff\r\n"

    mail = parse(raw)

    assert (mail.from_name, mail.subject) == ("Jürgen Groß", "Grüße")
    assert mail.text.startswith("Hallo Welt")
    assert_storable(mail)


def assert_storable(mail: ParsedMail) -> None:
    texts = [mail.message_id, mail.from_address, mail.from_name, mail.subject, mail.text,
             *mail.recipients, *mail.in_reply_to, *mail.references,
             *(a.name for a in mail.attachments)]
    for text in texts:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogate


@pytest.mark.parametrize(("body", "reply"), [
    ("Sí, lo llamo el jueves.\n\nEl lun, 23 nov 2026 a las 9:00, Mia Marketer "
     "(<mia@example.com>) escribió:\n> Hola Rob,\n> Acme Rockets", "Sí, lo llamo el jueves."),
    ("Ja, ik bel donderdag.\n\nOp ma 23 nov. 2026 om 09:00 schreef Mia Marketer "
     "<mia@example.com>:\n> Hoi Rob,", "Ja, ik bel donderdag."),
    ("Sì, chiamo giovedì.\n\nIl giorno lun 23 nov 2026 alle ore 09:00 Mia Marketer "
     "<mia@example.com> ha scritto:\n> Ciao Rob,", "Sì, chiamo giovedì."),
    ("Sim, ligo na quinta.\n\nEm seg., 23 de nov. de 2026 às 09:00, Mia Marketer <\n"
     "mia@example.com> escreveu:\n> Olá Rob,", "Sim, ligo na quinta."),
    ("Ja, jag ringer på torsdag.\n\nDen mån 23 nov. 2026 kl 09:00 skrev Mia Marketer "
     "<mia@example.com>:\n> Hej Rob,", "Ja, jag ringer på torsdag."),
    ("Tak, zadzwonię w czwartek.\n\npon., 23 lis 2026 o 09:00 Mia Marketer "
     "<mia@example.com> napisał(a):\n> Cześć Rob,", "Tak, zadzwonię w czwartek."),
    ("はい、木曜日に電話します。\n\n2026年11月23日(月) 9:00 Mia Marketer <mia@example.com>:\n"
     "> こんにちは", "はい、木曜日に電話します。"),
    ("I'll call at 10:30.\nOn Mon, 23 Nov 2026 at 09:00, Mia Marketer <mia@example.com> wrote:\n"
     "> Hi Rob,", "I'll call at 10:30."),
    # an inline answer keeps its own lines; the quoted ones go (they may hold signed links)
    ("My answers are inline:\n> Can you call her?\nYes, Thursday.",
     "My answers are inline:\nYes, Thursday."),
])
def test_quote_headers_in_other_languages_are_cut(body, reply):
    message = EmailMessage()
    message["From"] = "rob.rep@contoso.example"
    message.set_content(body)

    assert parse(message.as_bytes()).text == reply


def test_the_note_of_an_attachment_with_a_non_ascii_name_reads_back():
    message = EmailMessage()
    message["From"] = "rob.rep@contoso.example"
    message.set_content("Angebot anbei.")
    message.add_attachment(b"%PDF-1.4 offer", maintype="application", subtype="pdf",
                           filename="Angebot Müller.pdf")

    kept = message_from_bytes(without_attachments(message.as_bytes()), policy=policy.default)

    notes = [part.get_content() for part in kept.iter_attachments()] + [
        part.get_content() for part in kept.walk() if part.get_content_type() == "text/plain"]
    assert "[attachment not kept: Angebot Müller.pdf, 14 bytes]\n" in notes
    assert b"%PDF" not in kept.as_bytes()


def test_a_list_in_the_reply_is_kept_and_the_signature_after_it_is_not():
    message = EmailMessage()
    message["From"] = "rob.rep@contoso.example"
    message.set_content("Next steps:\n- call Dana on Thursday\n- send the deck\n\n-- \n"
                        "Rob Rep\nAccount Executive\n")

    assert parse(message.as_bytes()).text == (
        "Next steps:\n- call Dana on Thursday\n- send the deck")
