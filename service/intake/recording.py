"""Recording a transaction's worth of intake events: every lead and tracking id is looked
up once, activities are inserted together, and each lead's score and last activity are
written once. Events still apply in order: an identify links a visitor's id, and the
visitor's earlier activity (stored or in the same batch) moves to the lead."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from service import lifecycle
from service.core.db import db
from service.core.fastsql import insert_returning, insert_rows, score_update_sql, select_rows
from service.core.models import Activity, AnonymousActivity, Identity, Lead
from service.intake.event import Event
from service.leads.scoring import Policy, add_logs

SCORE_TRIES = 100
FIRST_TOUCH = ("utm_source", "utm_campaign")
LOOKED_UP = ("id", "email", "score_log", *Lead.EDITABLE)


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
        self.stored: set[str] = set()  # anonymous ids with stored activity
        self.changed: dict[int, dict] = {}
        self.activities: list[dict] = []
        self.waiting: dict[str, list[dict]] = {}  # anonymous id → activity without a lead
        self.scored: dict[int, list[tuple[str, datetime]]] = {}  # lead id → (type, time)

    def record(self, events: list[Event]) -> None:
        if not events:
            return
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
            anonymous = [value for kind, value in ids if kind == "anonymous_id"]
            if anonymous:
                self.stored = {row[0] for row in select_rows(_visitors_with_activity,
                                                              anonymous)}
        emails = list({event.email for event in events if event.email})
        if emails or self.owners:
            self._load(emails, list(set(self.owners.values())))
        first_fields: dict[str, dict] = {}
        for event in events:
            if event.email and event.email not in self.by_email:
                first_fields.setdefault(event.email, event.fields)
        if first_fields:
            lifecycle.capture_many([{**fields, "email": email}
                                    for email, fields in first_fields.items()],
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
        lead = self._lead_for(event)
        if lead is not None and (event.anonymous_id or event.user_id):
            self._link(lead, event)
        if event.identify_only:
            return
        row = {"type": event.type, "source": self.source, "occurred_at": event.occurred_at,
               "properties": event.properties, "raw": event.raw, "created_at": self.now}
        if lead is None:
            if event.anonymous_id:
                self.waiting.setdefault(event.anonymous_id, []).append(row)
                self.result.anonymous += 1
            return
        self._attach(lead["id"], [row])
        self.result.kinds.setdefault(lead["id"], set()).add(event.type)

    def _lead_for(self, event: Event) -> dict | None:
        if event.email:
            lead = self.by_email[event.email]
        else:
            owner = next((self.owners[key] for key in _tracking_ids(event)
                          if key in self.owners), None)
            if owner is None:
                return None
            lead = self._lead(owner)
        self._update(lead, event.fields)
        return lead

    def _update(self, lead: dict, fields: dict) -> None:
        """New field values win, except the UTM source and campaign, which keep the first
        touch."""
        changes = {name: value for name, value in fields.items()
                   if lead[name] != value and not (name in FIRST_TOUCH and lead[name])}
        lead.update(changes)
        if changes:
            self.changed.setdefault(lead["id"], {}).update(changes)

    def _link(self, lead: dict, event: Event) -> None:
        """Tie the tracking ids to the lead (the first lead wins) and move the visitor's
        activity to it."""
        for key in _tracking_ids(event):
            if key not in self.owners:
                self.owners[key] = self._claim(key, lead["id"])
        anonymous_id = event.anonymous_id
        if anonymous_id and self.owners[("anonymous_id", anonymous_id)] == lead["id"]:
            rows = self.waiting.pop(anonymous_id, [])
            if anonymous_id in self.stored:
                self.stored.discard(anonymous_id)
                rows = _take_stored(anonymous_id) + rows
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
        for lead_id, changes in self.changed.items():
            Lead.update(**changes, updated_at=self.now).where(Lead.id == lead_id).execute()
        insert_rows(AnonymousActivity, [{**row, "anonymous_id": anonymous_id}
                                        for anonymous_id, rows in self.waiting.items()
                                        for row in rows])
        insert_rows(Activity, self.activities)
        for lead_id, items in self.scored.items():
            self._settle(self.by_id[lead_id], items)

    def _settle(self, lead: dict, items: list[tuple[str, datetime]]) -> None:
        """Move last_activity_at forward and add the activities' points to the score, in one
        update conditional on the score this batch read (re-read and retried if another
        writer changed it)."""
        terms = [term for kind, at in items
                 if (term := self.policy.term(kind, at) if self.policy else None) is not None]
        stored = Lead.last_activity_at.db_value(max(at for _, at in items))
        lead_id, before = lead["id"], lead["score_log"]
        for _ in range(SCORE_TRIES):
            after = before
            for term in terms:
                after = add_logs(after, term)
            if db.execute_sql(score_update_sql(type(db.obj)),
                              (stored, stored, after, lead_id, before)
                              ).rowcount == 1:
                break
            before = Lead.select(Lead.score_log).where(Lead.id == lead_id).scalar()
        else:
            raise RuntimeError(f"lead {lead_id}: score kept changing under {SCORE_TRIES} tries")
        if terms:
            threshold = self.policy.threshold_log(self.now)
            if (before is None or before < threshold) and after >= threshold:
                self.result.crossed.add(lead_id)


def _identities(values: list[str]):
    return Identity.select(Identity.kind, Identity.value, Identity.lead).where(
        Identity.value.in_(values))


def _visitors_with_activity(anonymous_ids: list[str]):
    return AnonymousActivity.select(AnonymousActivity.anonymous_id).where(
        AnonymousActivity.anonymous_id.in_(anonymous_ids)).distinct()


def _leads(emails: list[str], ids: list[int]):
    return Lead.select(*(Lead._meta.fields[name] for name in LOOKED_UP)).where(
        Lead.email.in_(emails) | Lead.id.in_(ids))


def _tracking_ids(event: Event) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value in (("user_id", event.user_id),
                                              ("anonymous_id", event.anonymous_id)) if value]


def _take_stored(anonymous_id: str) -> list[dict]:
    """The visitor's stored activity, deleted from the anonymous table for the caller to
    attach to a lead."""
    history = list(AnonymousActivity.select().where(
        AnonymousActivity.anonymous_id == anonymous_id))
    AnonymousActivity.delete().where(
        AnonymousActivity.id.in_([a.id for a in history])).execute()
    return [{"type": a.type, "source": a.source, "occurred_at": a.occurred_at,
             "properties": a.properties, "raw": a.raw, "created_at": a.created_at}
            for a in history]
