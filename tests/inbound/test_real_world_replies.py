"""Real-world replies (tests/inbound/fixtures) through receive(), each to a handoff email
whose Reply-To token it carries: the rep's words alone go on the thread, whatever the mail
client; an out-of-office is noted, a spoofed sender held, a delivery report a bounce."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from service.core import links
from service.core.models import HandoffMessage, InboundEmail, OutboxEmail, Rep
from service.core.runtime import runtime
from service.inbound.receive import receive
from service.nurture.suppression import is_suppressed
from tests.factories import promoted
from tests.inbound.test_parse import ORIGINAL_ID, REPLIES, TOKEN, fixture
from tests.inbound.test_replies import REPLIES as REPLY_SETTINGS

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def handoff_to(address: str):
    rep = Rep.create(email=address, name="Rob Rep")
    return promoted(rep, "dana@acme.example", at=NOW)


def answered(name: str, handoff) -> bytes:
    """The fixture, its token made for this handoff's rep today."""
    day = (NOW.date() - date(1970, 1, 1)).days
    token = links.reply_token(runtime.secret_key, "handoff", handoff.id, "rep", day)
    return fixture(name).replace(TOKEN.encode(), token.encode())


def arrive(raw: bytes):
    return receive(raw, channel="imap", settings=runtime.settings, secret=runtime.secret_key,
                   now=NOW)


@pytest.mark.parametrize("name", sorted(set(REPLIES) - {"spoofed_reply"}))
def test_each_clients_reply_goes_on_the_thread_as_the_reply_alone(make_app, name):
    make_app(**REPLY_SETTINGS)
    address, _, text = REPLIES[name]
    handoff = handoff_to(address)
    received = arrive(answered(name, handoff))
    assert received.status == "posted", InboundEmail.get_by_id(received.email_id).reason
    [message] = HandoffMessage.select()
    assert (message.handoff_id, message.author, message.body) == (handoff.id, "rep", text)


def test_a_spoofed_sender_is_held(make_app):
    make_app(**REPLY_SETTINGS)
    handoff = handoff_to("rob.rep@contoso.example")
    received = arrive(answered("spoofed_reply", handoff))
    row = InboundEmail.get_by_id(received.email_id)
    assert row.status == "held" and "rob.rep@contoso.example.co" in row.reason
    assert HandoffMessage.select().count() == 0


def test_an_out_of_office_is_noted_on_the_handoff(make_app):
    make_app(**REPLY_SETTINGS)
    handoff = handoff_to("rob.rep@contoso.example")
    received = arrive(answered("out_of_office", handoff))
    assert received.status == "noted"
    [note] = HandoffMessage.select()
    assert note.kind == "out_of_office" and note.body.startswith("Automatic reply:")


def test_a_delivery_report_bounces_the_address_it_names(make_app):
    make_app(**REPLY_SETTINGS)
    handoff_to("rob.rep@contoso.example")
    OutboxEmail.update(message_id=ORIGINAL_ID, to_address="gone@example.net").where(
        OutboxEmail.id == 1).execute()  # as if it had gone to the address reported
    received = arrive(fixture("dsn_bounce"))
    assert received.status == "bounced"
    assert is_suppressed("gone@example.net")


def test_an_attachment_is_noted_not_kept(make_app):
    make_app(**REPLY_SETTINGS)
    handoff = handoff_to("rob.rep@gmail.example")
    raw = answered("with_attachment", handoff)
    row = InboundEmail.get_by_id(arrive(raw).email_id)
    assert [(a["name"], a["size"]) for a in row.attachments] == [("Acme signed quote.pdf", 255)]
    assert b"[attachment not kept: Acme signed quote.pdf, 255 bytes]" in bytes(row.raw)
    assert len(bytes(row.raw)) < len(raw)
