"""The weekly digest: last week's headline figures against the benchmark, and the early
warnings, mailed to the configured recipients once a week (claimed by a unique row)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import peewee

from service.core import outbox
from service.core.calendar import DAYS
from service.core.db import transaction
from service.core.models import DigestLog
from service.core.settings import Settings
from service.reports import figures as reports


def due_week(now: datetime, settings: Settings) -> str | None:
    """The ISO week to report on, when the digest's day and time have come this week."""
    local = now.astimezone(ZoneInfo(settings.reports.time_zone))
    send_day = DAYS.index(settings.reports.digest_day)
    send_time = time.fromisoformat(settings.reports.digest_time)
    if local.weekday() < send_day or (local.weekday() == send_day
                                      and local.time() < send_time):
        return None
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


def last_week(now: datetime, settings: Settings) -> reports.Range:
    today = now.astimezone(ZoneInfo(settings.reports.time_zone)).date()
    monday = today - timedelta(days=today.weekday())
    return reports.Range(monday - timedelta(days=7), monday - timedelta(days=1), "week")


def send_if_due(*, settings: Settings, now: datetime) -> bool:
    """Queue this week's digest unless it went out already; True when this call did."""
    recipients = settings.reports.digest_recipients
    week = due_week(now, settings)
    if week is None or not recipients:
        return False
    try:
        with transaction():
            DigestLog.create(week=week, sent_at=now)
            span = last_week(now, settings)
            for address in recipients:
                outbox.queue_email("weekly_digest", to_address=address, now=now,
                                   context={"start": span.start.isoformat(),
                                            "end": span.end.isoformat()})
    except peewee.IntegrityError:
        return False
    return True


def context(start: str, end: str, settings: Settings) -> dict:
    span = reports.Range(date.fromisoformat(start), date.fromisoformat(end), "week")
    data = reports.dashboard(settings, span)
    mqls = sum(n for _, n in data["volume"]["rows"])
    benchmark = data["volume"]["benchmark"]
    return {"data": data, "mqls": mqls, "benchmark": benchmark,
            "change": (mqls / benchmark - 1) if benchmark else None,
            "sqls": data["origins"]["inbound"] + data["origins"]["outbound"]}
