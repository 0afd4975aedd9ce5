"""Scoring leads: the decay arithmetic is in core/scores.py; here the queries that use it
(the suggested list, a rescore of every lead) and the per-activity breakdown."""

from __future__ import annotations

from datetime import datetime

from peewee import PostgresqlDatabase, fn

from service.core.db import db, transaction
from service.core.models import Activity, Lead
from service.core.scores import EPOCH, Policy, add_logs

__all__ = ["EPOCH", "Policy", "add_logs", "breakdown", "contributions", "rescore_all",
           "suggested"]


def breakdown(activities, policy: Policy, now: datetime) -> list[dict]:
    """Per activity: its type, when, full points and points left after decay."""
    return [{"activity": a, "type": a.type, "at": a.occurred_at,
             "points": policy.points.get(a.type, 0),
             "now": round(policy.decayed(a.type, a.occurred_at, now), 2)}
            for a in activities]


def contributions(lead_id: int, policy: Policy, now: datetime) -> list[dict]:
    """How the lead's score is made, per activity type: how many, the points each is worth,
    and the points left of them all after decay (highest first). Their sum is the score.
    Reads each activity's type and time in seconds (the database's arithmetic, not a datetime
    made per row: a lead with 100,000 activities adds up in tens of milliseconds) through
    the (lead, occurred_at) index."""
    rows: dict[str, dict] = {}
    query = (Activity.select(Activity.type, epoch_seconds(Activity.occurred_at))
             .where(Activity.lead == lead_id))
    half_life, now_seconds = policy.half_life_days * 86400, now.timestamp()
    for kind, seconds in db.execute(query):
        row = rows.get(kind)
        if row is None:
            row = rows[kind] = {"type": kind, "count": 0, "points": 0.0,
                                "each": policy.points.get(kind, 0)}
        row["count"] += 1
        if row["each"] > 0:
            row["points"] += row["each"] * 2 ** ((float(seconds) - now_seconds) / half_life)
    return sorted(rows.values(), key=lambda row: (-row["points"], row["type"]))


def epoch_seconds(column):
    """A stored UTC time as seconds since 1970, computed by the database."""
    if isinstance(db.obj, PostgresqlDatabase):
        return fn.date_part("epoch", column)
    return (fn.julianday(column) - 2440587.5) * 86400.0


def suggested(policy: Policy, now: datetime):
    """Leads at or over the threshold that marketing could promote: an indexed range scan."""
    return (Lead.select().where(Lead.stage.in_(("lead", "nurture")),
                                Lead.score_log >= policy.threshold_log(now))
            .order_by(Lead.score_log.desc()))


def rescore_all(policy: Policy, *, now: datetime, chunk: int = 1000) -> int:
    """Recompute score_log for every lead from its activities, a chunk of leads at a time."""
    done, last_id = 0, 0
    while True:
        ids = [row.id for row in Lead.select(Lead.id).where(Lead.id > last_id)
               .order_by(Lead.id).limit(chunk)]
        if not ids:
            return done
        logs: dict[int, float | None] = dict.fromkeys(ids)
        for activity in Activity.select(Activity.lead, Activity.type, Activity.occurred_at) \
                .where(Activity.lead.in_(ids)):
            logs[activity.lead_id] = add_logs(logs[activity.lead_id],
                                              policy.term(activity.type, activity.occurred_at))
        with transaction():
            for lead_id, value in logs.items():
                Lead.update(score_log=value).where(Lead.id == lead_id).execute()
        done, last_id = done + len(ids), ids[-1]
