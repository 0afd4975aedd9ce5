"""Replies received: how many a second receive() keeps, reads, matches and posts to their
handoff's thread (each a real Gmail-style reply with quoted history and a signature, on
SQLite, in one process), against a baseline measured in the same run — the standard
library's email parser alone on the same messages plus one plain INSERT of each raw message.
Then the largest message kept (inbound.max_message_kib, 10 MiB of quoted history): read
by the reply parser, against the standard library parsing it.

Usage: python benchmarks/inbound_replies.py [--replies 500]"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from common import ROOT, bench_app, machine

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GMAIL = (ROOT / "tests/inbound/fixtures/gmail_reply.eml").read_bytes()


def replies(count: int) -> list[bytes]:
    """One handoff per reply, each reply carrying its handoff's token."""
    from service.core import links
    from service.core.models import Lead, Rep
    from service.core.runtime import runtime
    from service.handoffs.actions import promote_lead
    from service.intake.activity import record_events
    from service.intake.event import Event

    rep = Rep.create(email="rob.rep@gmail.example", name="Rob Rep")
    day = (NOW.date() - date(1970, 1, 1)).days
    made = []
    for number in range(count):
        email = f"lead{number}@acme.example"
        record_events([Event("form_submit", NOW, email=email)], source="bench", now=NOW)
        lead_id = Lead.get(Lead.email == email).id
        handoff = promote_lead(lead_id, rep_id=rep.id, note="", actor="mia@example.com",
                               settings=runtime.settings, now=NOW)
        token = links.reply_token(runtime.secret_key, "handoff", handoff.id, "rep", day)
        made.append(GMAIL.replace(b"TOKEN", token.encode()).replace(
            b"Message-ID: <", f"Message-ID: <{number}.".encode(), 1))
    return made


def baseline(raws: list[bytes], folder: Path) -> float:
    db = sqlite3.connect(folder / "bare.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("CREATE TABLE kept (id INTEGER PRIMARY KEY, sender TEXT, body TEXT, raw BLOB)")
    started = time.perf_counter()
    for raw in raws:
        message = message_from_bytes(raw, policy=policy.default)
        text = message.get_body(("plain",)).get_content()
        db.execute("INSERT INTO kept (sender, body, raw) VALUES (?, ?, ?)",
                   (str(message["From"]), text, raw))
    return time.perf_counter() - started


def received(raws: list[bytes]) -> float:
    from service.core.models import HandoffMessage
    from service.core.runtime import runtime
    from service.inbound.receive import receive

    started = time.perf_counter()
    for raw in raws:
        receive(raw, channel="bench", settings=runtime.settings, secret=runtime.secret_key,
                now=NOW)
    took = time.perf_counter() - started
    assert HandoffMessage.select().count() == len(raws), "every reply posted"
    return took


def largest() -> tuple[float, float, int]:
    from service.inbound.parse import parse

    message = EmailMessage()
    message["From"] = "rob.rep@contoso.example"
    message.set_content("Call me.\n\n" + "> quoted line of an old message\n" * 300_000)
    raw = message.as_bytes()
    started = time.perf_counter()
    message_from_bytes(raw, policy=policy.default).get_body(("plain",)).get_content()
    stdlib = time.perf_counter() - started
    started = time.perf_counter()
    assert parse(raw).text == "Call me."
    return time.perf_counter() - started, stdlib, len(raw)


def hostile() -> float:
    """A line of 200,000 "@" above a quote: what a quadratic search of quote headers would
    take minutes over."""
    from service.inbound.parse import parse

    raw = ("From: a@example.net\r\nSubject: s\r\n\r\nhi\n" + "@" * 200_000
           + "\n> quoted\n").encode()
    started = time.perf_counter()
    parse(raw)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replies", type=int, default=500)
    count = parser.parse_args().replies
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        bench_app(folder, **{"inbound.reply_address": "reply@leads.example.com",
                             "mail.transport": "capture"})
        raws = replies(count)
        ours, bare = received(raws), baseline(raws, Path(folder))
    print(f"replies received and posted: {count / ours:,.0f}/s ({ours / count * 1000:.1f} ms "
          f"each: kept, parsed, matched, thread message and outbox email written)")
    print(f"baseline (stdlib parse + one INSERT): {count / bare:,.0f}/s · ratio "
          f"{bare / ours:.2f}")
    reply_parser, stdlib, size = largest()
    print(f"largest message kept ({size / 2**20:.1f} MiB): read in {reply_parser:.2f} s · "
          f"stdlib parse alone {stdlib:.2f} s · ratio {stdlib / reply_parser:.2f}")
    print(f"a 200,000-character line above a quote: read in {hostile():.2f} s")


if __name__ == "__main__":
    main()
