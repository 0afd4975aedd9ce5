"""Recording a transaction's worth of intake events: every lead and tracking id is looked
up once, activities are inserted together, and each lead's score and last activity are
written once. Events still apply in order: an identify links a visitor's id, and the
visitor's earlier activity (stored or in the same batch) moves to the lead."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, reduce

import peewee
from peewee import SqliteDatabase

from service import lifecycle
from service.core.db import db
from service.core.fastsql import insert_returning, insert_rows, score_update_sql, select_rows
from service.core.models import Activity, AnonymousActivity, Identity, Lead
from service.intake.event import Event
from service.leads.scoring import Policy, add_logs

FIRST_TOUCH = ("utm_source", "utm_campaign")
LOOKED_UP = ("id", "email", "score_log", *Lead.EDITABLE)
PARKED_ONLY = ("anonymous_id", "user_id")
ACTIVITY_SQL = ('INSERT INTO "activity" ("lead_id", "type", "occurred_at", "source", '
                '"properties", "raw", "created_at") VALUES (?, ?, ?, ?, ?, ?, ?)')
USER_ID_LOCK = 0x1EAD2  # first key of the two-key advisory locks on userIds
HOLD_USER_IDS = ("SELECT count(pg_advisory_xact_lock(%s, h)) FROM (SELECT DISTINCT "
                 "hashtext(v) AS h FROM unnest(%s::text[]) AS v ORDER BY 1) AS held")


@dataclass
class Recorded:
    activities: int = 0
    anonymous: int = 0
    duplicates: int = 0  # deliveries (webhooks) or messages (tracking) recorded before
    crossed: set = field(default_factory=set)
    kinds: dict = field(default_factory=dict)


class Batch:
    def __init__(self, source: str, now: datetime, policy: Policy | None, result: Recorded):
        self.source, self.now, self.policy, self.result = source, now, policy, result
        self.by_email: dict[str, dict] = {}  # the lead fields intake reads, by email
        self.by_id: dict[int, dict] = {}
        self.owners: dict[tuple[str, str], int] = {}  # tracking id → lead id
        self.stored: set[tuple[str, str]] = set()  # tracking ids with parked activity
        self.changed: dict[int, dict] = {}
        self.activities: list[dict] = []
        self.waiting: dict[int, dict] = {}  # activity without a lead, by its place in order
        self.parked: dict[tuple[str, str], list[int]] = {}  # tracking id → places waiting
        self.scored: dict[int, list[tuple[str, datetime]]] = {}  # lead id → (type, time)
        self.threshold: float | None = None

    def record(self, events: list[Event]) -> None:
        if not events:
            return
        _hold_user_ids(sorted({event.user_id for event in events if event.user_id}))
        self._look_up(events)
        for event in events:
            self._add(event)
        self._write()

    def _look_up(self, events: list[Event]) -> None:
        ids = {key for event in events for key in _tracking_ids(event)}
        if ids:
            values = list({value for _, value in ids})
            self.owners = {(kind, value): lead_id for kind, value, lead_id
                           in select_rows(_identities, values) if (kind, value) in ids}
            self.stored = {key for row in select_rows(_parked_under, values, values)
                           for key in _parked_keys(*row) if key in ids}
        emails = list({event.email for event in events if event.email})
        if emails or self.owners:
            self._load(emails, list(set(self.owners.values())))
        first_fields: dict[str, dict] = {}
        for event in events:
            if event.email and event.email not in self.by_email:
                first_fields.setdefault(event.email, event.fields)
        if first_fields:  # in email order, as every recorder inserts them: no deadlock
            lifecycle.capture_many([{**first_fields[email], "email": email}
                                    for email in sorted(first_fields)],
                                   source=self.source, actor=self.source, now=self.now)
            self._load(list(first_fields), [])

    def _load(self, emails: list[str], ids: list[int]) -> None:
        for row in select_rows(_leads, emails, ids):
            lead = dict(zip(LOOKED_UP, row, strict=True))
            self.by_email[lead["email"]] = self.by_id[lead["id"]] = lead

    def _lead(self, lead_id: int) -> dict:
        if lead_id not in self.by_id:
            self._load([], [lead_id])
        return self.by_id[lead_id]

    def _add(self, event: Event) -> None:
        keys = _tracking_ids(event)
        lead = self._lead_for(event, keys)
        if lead is not None and keys:
            self._link(lead, keys)
        if event.identify_only:
            return
        row = {"type": event.type, "source": self.source, "occurred_at": event.occurred_at,
               "properties": event.properties, "raw": event.raw, "created_at": self.now}
        if lead is None:
            self._park(event, keys, row)
            return
        self._attach(lead["id"], [row])
        self.result.kinds.setdefault(lead["id"], set()).add(event.type)

    def _lead_for(self, event: Event, keys: list[tuple[str, str]]) -> dict | None:
        if event.email:
            lead = self.by_email[event.email]
        else:
            owner = next((self.owners[key] for key in keys if key in self.owners), None)
            if owner is None:
                return None
            lead = self._lead(owner)
        self._update(lead, event.fields)
        return lead

    def _update(self, lead: dict, fields: dict) -> None:
        """New field values win, except the UTM source and campaign, which keep the first
        touch."""
        if not fields:
            return
        changes = {name: value for name, value in fields.items()
                   if lead[name] != value and not (name in FIRST_TOUCH and lead[name])}
        lead.update(changes)
        if changes:
            self.changed.setdefault(lead["id"], {}).update(changes)

    def _park(self, event: Event, keys: list[tuple[str, str]], row: dict) -> None:
        """Keep activity without a lead under its tracking ids (an anonymous visitor's, or
        a userId's whose identify another recorder has not recorded yet)."""
        place = len(self.waiting)
        self.waiting[place] = {**row, "anonymous_id": event.anonymous_id or "",
                               "user_id": event.user_id}
        for key in keys:
            self.parked.setdefault(key, []).append(place)
        self.result.anonymous += 1

    def _link(self, lead: dict, keys: list[tuple[str, str]]) -> None:
        """Tie the tracking ids to the lead (the first lead wins) and move the activity
        parked under those it owns to it, oldest first."""
        for key in keys:
            if key not in self.owners:
                self.owners[key] = self._claim(key, lead["id"])
        if not self.stored and not self.parked:  # nothing parked: the usual case
            return
        owned = [key for key in keys if self.owners[key] == lead["id"]]
        stored = [key for key in owned if key in self.stored]
        places = sorted({place for key in owned for place in self.parked.pop(key, [])})
        rows = _take_stored(stored) if stored else []
        self.stored.difference_update(stored)
        rows += [_unparked(row) for place in places
                 if (row := self.waiting.pop(place, None)) is not None]
        if rows:
            self._attach(lead["id"], rows)

    def _claim(self, key: tuple[str, str], lead_id: int) -> int:
        kind, value = key
        if insert_returning(Identity, [{"kind": kind, "value": value, "lead": lead_id}], "id",
                            ignore_conflicts=True):
            return lead_id
        return Identity.get(Identity.kind == kind, Identity.value == value).lead_id

    def _attach(self, lead_id: int, rows: list[dict]) -> None:
        self.activities += [{**row, "lead": lead_id} for row in rows]
        self.scored.setdefault(lead_id, []).extend(
            (row["type"], row["occurred_at"]) for row in rows)
        self.result.activities += len(rows)

    def _write(self) -> None:
        if isinstance(db.obj, SqliteDatabase):
            insert_rows(AnonymousActivity, list(self.waiting.values()))
            _insert_activities_alone(self.activities)
            self._write_leads_alone()
            return
        # The leads first, in id order: inserting their activities takes a key-share lock
        # on each (the foreign key), which taken first, in event order, deadlocked against
        # another recorder locking the same leads.
        scores = dict(select_rows(_locked_scores, sorted(self.changed.keys()
                                                         | self.scored.keys())))
        insert_rows(AnonymousActivity, list(self.waiting.values()))
        insert_rows(Activity, self.activities)
        self._write_leads_beside_others(scores)

    def _write_leads_alone(self) -> None:
        """SQLite, the one writer: the scores this batch read hold. Every changed lead, then
        every score in one executemany, each update still conditional on the score read."""
        for lead_id in self.changed:
            self._change(lead_id)
        settled = self._settled({lead_id: self.by_id[lead_id]["score_log"]
                                 for lead_id in self.scored})
        cursor = db.cursor()
        with peewee.__exception_wrapper__:
            cursor.executemany(score_update_sql(type(db.obj)),
                               [(at, at, after, lead_id, before)
                                for lead_id, at, before, after in settled])
        if cursor.rowcount != len(settled):
            raise RuntimeError("a lead's score changed while its batch was recorded")

    def _write_leads_beside_others(self, scores: dict[int, float | None]) -> None:
        """PostgreSQL, where recorders of other partitions may write the same leads: they
        are locked in id order, as every recorder does (they wait for each other, never
        deadlock), their scores read as they are now; then every score in one statement."""
        for lead_id in self.changed:
            self._change(lead_id)
        settled = self._settled({lead_id: scores[lead_id] for lead_id in self.scored})
        if settled:
            db.execute_sql(_set_scores_sql(len(settled)),
                           [value for lead_id, at, _, after in settled
                            for value in (lead_id, at, after)])

    def _change(self, lead_id: int) -> None:
        Lead.update(**self.changed[lead_id], updated_at=self.now).where(
            Lead.id == lead_id).execute()

    def _settled(self, before: dict[int, float | None]) -> list[tuple]:
        """(lead id, last activity as stored, score before, score after) for every scored
        lead; notes those that cross the promotion threshold."""
        settled = []
        for lead_id, items in self.scored.items():
            after, crossed = self._scored(items, before[lead_id])
            at = Lead.last_activity_at.db_value(max(at for _, at in items))
            settled.append((lead_id, at, before[lead_id], after))
            if crossed:
                self.result.crossed.add(lead_id)
        return settled

    def _scored(self, items: list[tuple[str, datetime]],
                before: float | None) -> tuple[float | None, bool]:
        """The score after these activities' points from the score `before`, and whether it
        crosses the promotion threshold with them."""
        terms = [term for kind, at in items
                 if (term := self.policy.term(kind, at) if self.policy else None) is not None]
        after = before
        for term in terms:
            after = add_logs(after, term)
        crossed = bool(terms) and (before is None or before < self._threshold()) and (
            after >= self._threshold())
        return after, crossed

    def _threshold(self) -> float:
        if self.threshold is None:
            self.threshold = self.policy.threshold_log(self.now)
        return self.threshold


def _insert_activities_alone(rows: list[dict]) -> None:
    """SQLite: the activities in one executemany of tuples, each value converted by its
    field as peewee would (the time they were recorded once for all)."""
    if not rows:
        return
    created = Activity.created_at.db_value(rows[0]["created_at"])
    occurred, to_json = Activity.occurred_at.db_value, Activity.properties.db_value
    with peewee.__exception_wrapper__:
        db.cursor().executemany(ACTIVITY_SQL, [
            (row["lead"], row["type"], occurred(row["occurred_at"]), row["source"],
             to_json(row["properties"]), to_json(row["raw"]),
             created if row["created_at"] is rows[0]["created_at"]
             else Activity.created_at.db_value(row["created_at"])) for row in rows])


def _locked_scores(lead_ids: list[int]):
    return Lead.select(Lead.id, Lead.score_log).where(Lead.id.in_(lead_ids)).order_by(
        Lead.id).for_update("FOR NO KEY UPDATE")  # what an update takes: foreign keys pass


@lru_cache(maxsize=64)
def _set_scores_sql(count: int) -> str:
    """Move each lead's last activity forward and set its score, for `count` leads."""
    rows = ", ".join(["(%s::integer, %s::timestamp, %s::double precision)"] * count)
    return ('UPDATE "lead" SET "last_activity_at" = CASE WHEN "lead"."last_activity_at" IS '
            'NULL OR "lead"."last_activity_at" < v.at THEN v.at ELSE "lead"."last_activity_at" '
            f'END, "score_log" = v.after FROM (VALUES {rows}) AS v (id, at, after) '
            'WHERE "lead"."id" = v.id')


def _identities(values: list[str]):
    return Identity.select(Identity.kind, Identity.value, Identity.lead).where(
        Identity.value.in_(values))


def _hold_user_ids(user_ids: list[str]) -> None:
    """PostgreSQL: until the transaction ends, hold a lock on each userId (in one order).
    Such ids cross partitions: a call with only a userId is recorded in its partition, the
    identify linking it in its anonymous id's, maybe at once by another recorder. Holding
    the id, one parks the call and commits before the other reads what is parked, or links
    the id and commits before the other reads the identities: the call is never parked
    after its identify has passed. SQLite's one writer needs no lock."""
    if user_ids and not isinstance(db.obj, SqliteDatabase):
        db.execute_sql(HOLD_USER_IDS, (USER_ID_LOCK, user_ids))


def _parked_under(anonymous_ids: list[str], user_ids: list[str]):
    return AnonymousActivity.select(AnonymousActivity.anonymous_id, AnonymousActivity.user_id
                                    ).where(AnonymousActivity.anonymous_id.in_(anonymous_ids)
                                            | AnonymousActivity.user_id.in_(user_ids)).distinct()


def _parked_keys(anonymous_id: str, user_id: str | None) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value in (("user_id", user_id),
                                              ("anonymous_id", anonymous_id)) if value]


def _leads(emails: list[str], ids: list[int]):
    return Lead.select(*(Lead._meta.fields[name] for name in LOOKED_UP)).where(
        Lead.email.in_(emails) | Lead.id.in_(ids))


def _tracking_ids(event: Event) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value in (("user_id", event.user_id),
                                              ("anonymous_id", event.anonymous_id)) if value]


def _take_stored(keys: list[tuple[str, str]]) -> list[dict]:
    """The activity parked under these tracking ids, oldest first, deleted from the parked
    table for the caller to attach to a lead."""
    under = reduce(operator.or_, [getattr(AnonymousActivity, kind) == value
                                  for kind, value in keys])
    history = list(AnonymousActivity.select().where(under).order_by(AnonymousActivity.id))
    AnonymousActivity.delete().where(
        AnonymousActivity.id.in_([a.id for a in history])).execute()
    return [{"type": a.type, "source": a.source, "occurred_at": a.occurred_at,
             "properties": a.properties, "raw": a.raw, "created_at": a.created_at}
            for a in history]


def _unparked(row: dict) -> dict:
    return {name: value for name, value in row.items() if name not in PARKED_ONLY}
