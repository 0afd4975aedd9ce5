"""Shared test factories (a lead, a promoted handoff, a rep in a team, an enrolled lead) and
one way to run calls at the same moment. Each factory goes through the real domain
functions, so a factory-made row is one the service itself could have made; those that
need settings take the app's, bound for the process (runtime.settings)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from service import lifecycle
from service.core import db
from service.core.addresses import normalise_email
from service.core.models import Activity, Enrollment, Handoff, InboundEvent, Lead, Rep, Team
from service.core.runtime import runtime
from service.handoffs.actions import promote_lead
from service.handoffs.sla import Schedule
from service.intake.activity import record_events
from service.intake.event import Event, lead_fields
from service.nurture import sequences as nurture

PROMOTER = "mia@example.com"


def record_activity(email: str, *, type: str, source: str, occurred_at: datetime,
                    now: datetime, policy=None, properties: dict | None = None,
                    fields: dict | None = None, raw: Any = None) -> Activity:
    """One activity recorded as any intake source records it (an Event through
    record_events); the activity."""
    event = Event(type=type, occurred_at=occurred_at, properties=properties or {}, raw=raw,
                  email=normalise_email(email), fields=lead_fields(fields or {}))
    record_events([event], source=source, now=now, policy=policy)
    return (Activity.select().join(Lead).where(Lead.email == event.email)
            .order_by(Activity.id.desc()).get())


def new_lead(email: str = "ada@example.com", *, at: datetime, fields: dict | None = None,
             source: str = "t", activity: str | None = "form_submit") -> Lead:
    """A new lead first seen at `at`: through intake with one activity of that kind, or with
    activity=None through the lifecycle's capture alone (no activity, no score)."""
    if activity is None:
        lifecycle.capture_many([{**lead_fields(fields or {}), "email": email}], source=source,
                               actor="t", now=at)
        return Lead.get(Lead.email == email)
    return record_activity(email, type=activity, source=source, occurred_at=at, now=at,
                           fields=fields).lead


def promoted(rep: Rep | None, who: str | Lead = "ada@example.com", *, at: datetime,
             note: str = "", actor: str = PROMOTER, window: timedelta | None = None,
             **lead_options: Any) -> Handoff:
    """A pending handoff to rep (None: the assignment rules choose) of `who`, an existing
    lead or the email of a new one (made by new_lead() with lead_options). The SLA schedule
    comes from the settings, as promotion in the service does; with a window, straight
    through the lifecycle with a plain deadline `window` after `at` and no other timers."""
    if not isinstance(who, Lead):
        who = new_lead(who, at=at, **lead_options)
    if window is not None:
        return lifecycle.promote(who.id, rep_id=rep.id, actor=actor, note=note, now=at,
                                 schedule=Schedule(at + window, None, None, None))
    return promote_lead(who.id, rep_id=rep and rep.id, note=note, actor=actor,
                        settings=runtime.settings, now=at)


def rep_in_team(email: str, *, team: str = "EMEA", manager_email: str = "",
                fallback_email: str = "", **fields: Any) -> Rep:
    """A rep in the named team, made with the given addresses on first use."""
    crew, _ = Team.get_or_create(name=team, defaults={
        "manager_email": manager_email, "fallback_email": fallback_email})
    return Rep.create(email=email, team=crew, **fields)


def enrolled(who: str | Lead = "ada@example.com", *, at: datetime,
             sequence: str = "default", **lead_options: Any) -> Enrollment:
    """`who` (an existing lead or the email of a new one) enrolled at `at`."""
    if not isinstance(who, Lead):
        who = new_lead(who, at=at, **lead_options)
    return nurture.enroll(who.id, sequence, settings=runtime.settings, now=at)


def at_once(act: Callable[[int], Any], times: int, *, database: bool = False) -> list:
    """act(0) … act(times - 1), each in its own thread, released together by a barrier;
    each call's result or the exception it raised, in order. With database, each thread
    opens its own connection before the barrier and closes it after."""
    results: list = [None] * times
    barrier = threading.Barrier(times)

    def run(i: int) -> None:
        if database:
            db.connect()
        barrier.wait()
        try:
            results[i] = act(i)
        except Exception as exc:  # noqa: BLE001 - handed back to the test to assert on
            results[i] = exc
        finally:
            if database:
                db.db.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def statements_run(act: Callable[[], Any]) -> list[str]:
    """The SQL statements act() runs, in order (counted where peewee sends them)."""
    seen, database = [], db.db.obj
    execute = database.execute_sql

    def counting(sql, *args, **kwargs):
        seen.append(sql)
        return execute(sql, *args, **kwargs)

    database.execute_sql = counting
    try:
        act()
    finally:
        del database.execute_sql
    return seen


def spoil_oldest_accepted():
    """Make the oldest accepted event unrecordable (a stored event without its time); return
    it as it was."""
    oldest = InboundEvent.select().order_by(InboundEvent.id).limit(1).get()
    InboundEvent.update(event='{"type": "page_view"}').where(
        InboundEvent.id == oldest.id).execute()
    return oldest
