"""Partitioned recording: several recorders at once keep each visitor's events in order,
share the partitions (PostgreSQL), take over those of a recorder that died, and keep identity
merges and de-duplication right across partitions. Every test runs on SQLite (one writer)
and on PostgreSQL (LEADBRIDGE_DATABASE__URL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

from service.core.db import utcnow
from service.core.models import Activity, AnonymousActivity, Identity, InboundEvent, Lead
from service.core.runtime import runtime
from service.intake.accept import accept_messages
from service.intake.activity import record_inbound
from service.intake.event import Event
from service.intake.leases import Lease, leased
from service.intake.partitions import PARTITIONS, partition_of
from tests.conftest import DATABASE_URL, ROOT
from tests.factories import at_once, spoil_oldest_accepted
from workers import recorder

SOURCE = "tracking:website"


def accept(*events: Event, ids: list[str] | None = None) -> None:
    ids = ids or [f"m-{time.perf_counter_ns()}-{n}" for n in range(len(events))]
    accept_messages(list(zip(events, ids, strict=True)), source=SOURCE, now=utcnow())


def identify(anonymous: str | None, email: str, user: str | None = None, **fields) -> Event:
    return Event(type="identify", occurred_at=utcnow(), identify_only=True, email=email,
                 anonymous_id=anonymous, user_id=user, fields=fields)


def track(kind: str, *, anonymous: str | None = None, user: str | None = None,
          at=None) -> Event:
    return Event(type=kind, occurred_at=at or utcnow(), anonymous_id=anonymous, user_id=user,
                 properties={"event": kind})


def in_other_partitions(first: str, prefix: str) -> str:
    """An id whose partition is not `first`'s."""
    return next(f"{prefix}-{n}" for n in range(100)
                if partition_of(track("x", user=f"{prefix}-{n}")) != partition_of(
                    track("x", anonymous=first)))


def two_recorders() -> None:
    """Two recorders draining at once, each on its own connection (and lease)."""
    errors = [e for e in at_once(lambda _: recorder.drain(), 2, database=True)
              if isinstance(e, Exception)]
    assert errors == []


def types_of(email: str) -> list[str]:
    lead = Lead.get(Lead.email == email)
    return [a.type for a in lead.activities.order_by(Activity.occurred_at, Activity.id)]


def test_each_visitors_events_keep_their_order_with_two_recorders(app):
    """Forty visitors each identify, rename themselves five times, then watch a demo: with
    two recorders at once, each ends with its last name and all its activity."""
    for round_ in range(5):
        accept(*[identify(f"anon-{v}", f"v{v}@example.com", first_name=f"Name{round_}")
                 for v in range(40)])
    accept(*[track("demo_video_watched", anonymous=f"anon-{v}") for v in range(40)])
    two_recorders()
    assert InboundEvent.select().count() == 0
    for v in range(40):
        lead = Lead.get(Lead.email == f"v{v}@example.com")
        assert lead.first_name == "Name4", f"visitor {v} kept an older name"
        assert types_of(lead.email) == ["demo_video_watched"]


def test_two_recorders_hold_disjoint_partitions_and_both_record(app):
    accept(*[track("page_view", anonymous=f"visitor-{v}") for v in range(400)])
    if not leased():  # SQLite: one writer records every partition, no lease is taken
        assert Lease().partitions() is None
        two_recorders()
        assert AnonymousActivity.select().count() == 400
        return
    held, taken, ready = {}, {0: 0, 1: 0}, threading.Barrier(2)

    def record(i: int) -> None:
        lease = Lease()
        try:
            for _ in range(3):  # both alive: each gives back what is over its share, and
                lease.rebalance()  # takes what the other gave back (in a later round)
                ready.wait()
            held[i] = set(lease.held)
            ready.wait()
            while n := record_inbound(settings=runtime.settings, now=utcnow(), limit=20,
                                      partitions=sorted(lease.held)):
                taken[i] += n
        finally:
            lease.release()

    assert [e for e in at_once(record, 2, database=True) if e is not None] == []
    assert held[0].isdisjoint(held[1])
    assert len(held[0]) == len(held[1]) == PARTITIONS // 2
    assert taken[0] > 0 and taken[1] > 0 and taken[0] + taken[1] == 400
    assert AnonymousActivity.select().count() == 400


def test_a_killed_recorder_gives_its_partitions_up_within_seconds(app, settings_overrides):
    """A recorder process holding every partition (on SQLite: the one write lock, in an
    open write transaction) is SIGKILLed: the recorder beside it records their events
    within seconds, not before (on SQLite after its back-off from the busy database)."""
    accept(*[track("page_view", anonymous=f"visitor-{v}") for v in range(50)])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, DATABASE_URL,
                               settings_overrides["data_dir"]], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    survivor = threading.Thread(target=recorder.run, args=(stop,))
    try:
        assert holder.stdout.readline().strip() == f"holding {PARTITIONS}"
        survivor.start()
        time.sleep(2)
        assert InboundEvent.select().count() == 50, "recorded while another held them"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        killed = time.monotonic()
        while InboundEvent.select().count() and time.monotonic() - killed < 15:
            time.sleep(0.1)
        waited = time.monotonic() - killed
        assert InboundEvent.select().count() == 0
        limit = 5 if leased() else recorder.BACKOFF_SECONDS + 5
        assert waited < limit, f"recorded {waited:.1f}s after the holder died"
    finally:
        stop.set()
        if survivor.is_alive():
            survivor.join(30)
        holder.kill()
        holder.wait(10)
        holder.stdout.close()


HOLDER = """
import sys, time
from service import create_app
from service.core import db
from service.intake.leases import Lease
from service.intake.partitions import PARTITIONS
create_app("config.toml", {"database.url": sys.argv[1], "data_dir": sys.argv[2],
                           "redis.url": "", "logging.level": "ERROR"})
db.connect()
if Lease().partitions() is None:  # SQLite: hold the one write lock
    db.db.execute_sql("BEGIN IMMEDIATE")
    print(f"holding {PARTITIONS}", flush=True)
else:
    lease = Lease()
    lease.rebalance()
    print(f"holding {len(lease.held)}", flush=True)
time.sleep(600)
"""


def test_a_call_with_only_a_user_id_waits_for_the_identify_in_another_partition(app):
    """A server-side track naming only userId U is recorded before the identify (anonymous
    id A, userId U, email) accepted first but living in A's partition: it is parked, then
    moves to the lead once the identify links U."""
    user = in_other_partitions("anon-a", "user")
    accept(identify("anon-a", "ua@example.com", user=user))
    accept(track("demo_video_watched", user=user))
    only = partition_of(track("x", user=user))
    assert record_inbound(settings=runtime.settings, now=utcnow(), partitions=[only]) == 1
    assert [(a.anonymous_id, a.user_id) for a in AnonymousActivity.select()] == [("", user)]
    recorder.drain()
    assert types_of("ua@example.com") == ["demo_video_watched"]
    assert AnonymousActivity.select().count() == 0
    assert Identity.get(Identity.value == user).lead.email == "ua@example.com"


def test_a_parked_user_id_call_stays_parked_until_identified(app):
    """Without an identify it waits (as anonymous activity does); a later identify of the
    userId alone, with an email, takes it."""
    accept(track("pricing_page_view", user="server-user"))
    recorder.drain()
    assert Lead.select().count() == 0 and AnonymousActivity.select().count() == 1
    accept(identify(None, "late@example.com", user="server-user"))
    recorder.drain()
    assert types_of("late@example.com") == ["pricing_page_view"]


def test_an_anonymous_id_identified_as_an_email_recorded_elsewhere_moves_its_activity(app):
    email = "known@example.com"
    accept(Event(type="webinar_attended", occurred_at=utcnow(), email=email))  # email's
    accept(track("pricing_page_view", anonymous="anon-b"),
           identify("anon-b", email))  # anon-b's partition
    two_recorders()
    assert sorted(types_of(email)) == ["pricing_page_view", "webinar_attended"]
    assert AnonymousActivity.select().count() == 0


def test_user_id_calls_and_their_identifies_racing_in_two_recorders_all_attach(app):
    """Sixty people: a server-side call with only their userId and an identify linking it
    from their anonymous id, in other partitions, recorded by two recorders at once (the
    order between partitions is theirs to choose): every call ends on its lead."""
    start = utcnow() - timedelta(minutes=5)
    people = range(60)
    users = [in_other_partitions(f"anon-{p}", f"user-{p}") for p in people]
    accept(*[identify(f"anon-{p}", f"p{p}@example.com", user=users[p]) for p in people])
    accept(*[track("demo_video_watched", user=users[p], at=start) for p in people])
    accept(*[track("pricing_page_view", user=users[p]) for p in people])
    two_recorders()
    assert InboundEvent.select().count() == 0
    assert AnonymousActivity.select().count() == 0
    for p in people:
        assert types_of(f"p{p}@example.com") == ["demo_video_watched", "pricing_page_view"]


def test_a_message_id_delivered_twice_into_two_partitions_is_recorded_once(app):
    """The same messageId re-delivered under another visitor's id (another partition): two
    recorders at once record it once."""
    first = track("demo_video_watched", anonymous="anon-c")
    again = track("demo_video_watched", anonymous=in_other_partitions("anon-c", "anon"))
    accept(first, again, ids=["same-message", "same-message"])
    accept(*[track("page_view", anonymous=f"filler-{n}") for n in range(100)])
    two_recorders()
    assert InboundEvent.select().count() == 0
    assert AnonymousActivity.select().where(
        AnonymousActivity.type == "demo_video_watched").count() == 1


def test_a_bad_stored_event_is_set_aside_alone_beside_another_recorder(app):
    accept(*[track("page_view", anonymous=f"visitor-{v}") for v in range(60)])
    broken = spoil_oldest_accepted()
    two_recorders()
    [left] = InboundEvent.select()
    assert left.id == broken.id and left.failed.startswith("KeyError")
    assert AnonymousActivity.select().count() == 59


def test_one_recorder_alone_records_every_partition(app):
    """SQLite: no lease, every partition; PostgreSQL: a lone recorder's share is all."""
    lease = Lease()
    try:
        if leased():
            assert lease.partitions() == list(range(PARTITIONS))
        else:
            assert lease.partitions() is None and lease.held == set()
    finally:
        if leased():
            lease.release()
    accept(*[track("page_view", anonymous=f"visitor-{v}") for v in range(10)])
    assert recorder.drain() == 10
