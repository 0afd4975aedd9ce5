"""Activity intake: every source normalises to Event and ends in record_events(); forms and
scripts use the one-event shortcut record_activity()."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email

from . import lifecycle, metrics, nurture
from .db import transaction
from .errors import InvalidInput
from .handoffs import auto_promote
from .models import Activity, AnonymousActivity, Delivery, Identity, Lead
from .scoring import Policy, add_logs


@dataclass
class Event:
    """One activity in the shape every intake adapter produces."""
    type: str
    occurred_at: datetime
    properties: dict = field(default_factory=dict)
    raw: Any = None
    email: str | None = None
    fields: dict = field(default_factory=dict)
    anonymous_id: str | None = None
    user_id: str | None = None
    identify_only: bool = False


@dataclass
class Recorded:
    activities: int = 0
    anonymous: int = 0
    duplicate: bool = False
    leads: set = field(default_factory=set)
    crossed: set = field(default_factory=set)
    kinds: dict = field(default_factory=dict)


ATOM_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


@lru_cache(maxsize=16384)
def _checked_domain(domain: str) -> str | None:
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalise_email(raw: object) -> str:
    """Trimmed, syntax-checked, lower-cased. Plain ASCII addresses take a fast path that
    checks each domain once (imports see the same few domains again and again)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("email is required")
    text = raw.strip()
    local, _, domain = text.rpartition("@")
    if len(text) <= 254 and len(local) <= 64 and ATOM_LOCAL.match(local):
        checked = _checked_domain(domain)
        if checked:
            return f"{local}@{checked}".lower()
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"email is not valid: {exc}") from None


def lead_fields(values: dict) -> dict:
    """Keep only known lead fields with non-empty text, trimmed and bounded."""
    return {name: str(values[name]).strip()[:255] for name in Lead.EDITABLE
            if values.get(name) not in (None, "") and str(values[name]).strip()}


def ensure_lead(email: str, *, fields: dict, source: str, now: datetime) -> Lead:
    """The lead for this email: captured if new, else updated with the fields given
    (utm_source keeps its first touch). The unique index still decides a race."""
    lead = Lead.get_or_none(Lead.email == email)
    if lead is None:
        try:
            return lifecycle.capture(email, fields=fields, source=source, actor=source,
                                     now=now)
        except lifecycle.LeadExists:
            lead = Lead.get(Lead.email == email)
    changes = {k: v for k, v in fields.items()
               if getattr(lead, k) != v and not (k == "utm_source" and lead.utm_source)}
    if changes:
        Lead.update(**changes, updated_at=now).where(Lead.id == lead.id).execute()
        for name, value in changes.items():
            setattr(lead, name, value)
    return lead


def record_activity(email: str, *, type: str, source: str, occurred_at: datetime,
                    now: datetime, policy: Policy | None = None, properties: dict | None = None,
                    fields: dict | None = None, raw: Any = None) -> Activity:
    event = Event(type=type, occurred_at=occurred_at, properties=properties or {}, raw=raw,
                  email=normalise_email(email), fields=lead_fields(fields or {}))
    record_events([event], source=source, now=now, policy=policy)
    return (Activity.select().join(Lead).where(Lead.email == event.email)
            .order_by(Activity.id.desc()).get())


def record_events(events: list[Event], *, source: str, now: datetime,
                  policy: Policy | None = None, delivery_id: str | None = None) -> Recorded:
    """Record events in one transaction. With a delivery id, a re-delivery records nothing
    and returns duplicate=True (the unique index on Delivery decides, even concurrently)."""
    result = Recorded()
    with transaction():
        if delivery_id is not None and not _first_delivery(source, delivery_id, now):
            result.duplicate = True
            return result
        for event in events:
            _record(event, source, now, policy, result)
    return result


def ingest(events: list[Event], *, source: str, settings: dict, now: datetime,
           delivery_id: str | None = None) -> Recorded:
    """Record events with the configured scoring, then auto-promote leads that crossed the
    threshold when that is switched on."""
    policy = Policy.from_settings(settings)
    result = record_events(events, source=source, now=now, policy=policy,
                           delivery_id=delivery_id)
    promote_crossed(result, settings, now)
    _count(result, source)
    return result


def ingest_messages(messages: list[tuple[Event, str]], *, source: str, settings: dict,
                    now: datetime) -> Recorded:
    """A batch of (event, message id): each message idempotent on its own id."""
    policy, result = Policy.from_settings(settings), Recorded()
    with transaction():
        for event, message_id in messages:
            record_message(event, source=source, message_id=message_id, now=now,
                           policy=policy, result=result)
    promote_crossed(result, settings, now)
    _count(result, source)
    return result


def _count(result: Recorded, source: str) -> None:
    metrics.add("leadbridge_intake_events_total", result.activities + result.anonymous,
                source=source)
    metrics.add("leadbridge_intake_duplicates_total", int(result.duplicate), source=source)


def promote_crossed(result: Recorded, settings: dict, now: datetime) -> None:
    """After the commit: re-engaged nurtured leads, then automatic promotion."""
    intent = set(settings["nurture.high_intent_types"])
    keen = sorted(lead_id for lead_id, kinds in result.kinds.items() if kinds & intent)
    if keen:
        nurture.reengage(keen, settings=settings, now=now)
    if settings["scoring.auto_promote"]:
        for lead_id in sorted(result.crossed):
            auto_promote(lead_id, settings=settings, now=now)


def record_message(event: Event, *, source: str, message_id: str, now: datetime,
                   policy: Policy | None, result: Recorded) -> None:
    """One message of a batch, idempotent on its own id; runs inside the batch transaction."""
    if _first_delivery(source, message_id, now):
        _record(event, source, now, policy, result)


def _first_delivery(source: str, delivery_id: str, now: datetime) -> bool:
    """Claim the delivery id; False when it was claimed before (even by a concurrent call)."""
    inserted = (Delivery.insert(source=source, delivery_id=delivery_id[:200], received_at=now)
                .on_conflict_ignore().as_rowcount().execute())
    return inserted == 1


def _record(event: Event, source: str, now: datetime, policy: Policy | None,
            result: Recorded) -> None:
    lead = _lead_for(event, source, now)
    if lead is not None and (event.anonymous_id or event.user_id):
        _link_identities(lead, event, policy, result, now)
    if event.identify_only:
        return
    if lead is None:
        if event.anonymous_id:
            AnonymousActivity.create(anonymous_id=event.anonymous_id, type=event.type,
                                     occurred_at=event.occurred_at, source=source,
                                     properties=event.properties, raw=event.raw,
                                     created_at=now)
            result.anonymous += 1
        return
    Activity.insert(lead=lead.id, type=event.type, source=source, occurred_at=event.occurred_at,
                    properties=event.properties, raw=event.raw, created_at=now).execute()
    if lead.last_activity_at is None or lead.last_activity_at < event.occurred_at:
        Lead.update(last_activity_at=event.occurred_at).where(Lead.id == lead.id).execute()
        lead.last_activity_at = event.occurred_at
    result.activities += 1
    result.leads.add(lead.id)
    result.kinds.setdefault(lead.id, set()).add(event.type)
    _add_score(lead, [(event.type, event.occurred_at)], policy, now, result)


def _lead_for(event: Event, source: str, now: datetime) -> Lead | None:
    if event.email:
        return ensure_lead(event.email, fields=event.fields, source=source, now=now)
    for kind, value in (("user_id", event.user_id), ("anonymous_id", event.anonymous_id)):
        if value:
            identity = Identity.get_or_none(Identity.kind == kind, Identity.value == value)
            if identity is not None:
                if event.fields:
                    Lead.update(**event.fields, updated_at=now).where(
                        Lead.id == identity.lead_id).execute()
                return Lead.get_by_id(identity.lead_id)
    return None


def _link_identities(lead: Lead, event: Event, policy: Policy | None, result: Recorded,
                     now: datetime) -> None:
    """Tie the tracking ids to the lead (first lead wins) and move anonymous history."""
    for kind, value in (("user_id", event.user_id), ("anonymous_id", event.anonymous_id)):
        if value:
            Identity.insert(kind=kind, value=value[:200], lead=lead.id).on_conflict_ignore(
            ).execute()
    if not event.anonymous_id:
        return
    owner = Identity.get_or_none(Identity.kind == "anonymous_id",
                                 Identity.value == event.anonymous_id)
    if owner is None or owner.lead_id != lead.id:
        return
    history = list(AnonymousActivity.select().where(
        AnonymousActivity.anonymous_id == event.anonymous_id))
    if not history:
        return
    Activity.insert_many([
        {"lead": lead.id, "type": a.type, "source": a.source, "occurred_at": a.occurred_at,
         "properties": a.properties, "raw": a.raw, "created_at": a.created_at}
        for a in history]).execute()
    latest = max(a.occurred_at for a in history)
    Lead.update(last_activity_at=latest).where(
        Lead.id == lead.id, Lead.last_activity_at.is_null() | (Lead.last_activity_at < latest)
    ).execute()
    AnonymousActivity.delete().where(AnonymousActivity.id.in_([a.id for a in history])).execute()
    result.activities += len(history)
    result.leads.add(lead.id)
    _add_score(lead, [(a.type, a.occurred_at) for a in history], policy, now, result)


def _add_score(lead: Lead, items: list[tuple[str, datetime]], policy: Policy | None,
               now: datetime, result: Recorded) -> None:
    """Add the activities' points to the lead's score with a conditional update on the
    score this call read (re-read and retried if another writer changed it)."""
    if policy is None:
        return
    terms = [policy.term(kind, at) for kind, at in items]
    terms = [t for t in terms if t is not None]
    if not terms:
        return
    lead_id, before = lead.id, lead.score_log
    while True:
        after = before
        for term in terms:
            after = add_logs(after, term)
        guard = Lead.score_log.is_null() if before is None else Lead.score_log == before
        if Lead.update(score_log=after).where(Lead.id == lead_id, guard).execute() == 1:
            lead.score_log = after
            break
        before = Lead.select(Lead.score_log).where(Lead.id == lead_id).scalar()
    threshold = policy.threshold_log(now)
    if (before is None or before < threshold) and after >= threshold:
        result.crossed.add(lead_id)
