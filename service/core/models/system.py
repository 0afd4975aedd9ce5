"""Panel users, the audit log, report rollups, rate counts, the schema version."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, UTCDateTimeField, utcnow
from service.core.models.fields import JSONField, new_session_token


class User(BaseModel):
    ROLES = ("admin", "marketer", "sales_manager")
    email = pw.CharField(max_length=254, unique=True)
    name = pw.CharField(default="")
    password_hash = pw.CharField()
    role = pw.CharField(max_length=32)
    active = pw.BooleanField(default=True)
    created_at = UTCDateTimeField(default=utcnow)
    # Part of every session's user id: a new one (logout, password change, deactivation)
    # ends every session of the user, wherever its cookie is.
    session_token = pw.CharField(max_length=32, default=new_session_token)


    def __str__(self) -> str:
        return self.email


class AuditEvent(BaseModel):
    """Who did what to which record, for the panel's read-only audit log."""
    at = UTCDateTimeField(index=True)
    actor = pw.CharField()
    action = pw.CharField(max_length=64)
    subject = pw.CharField(max_length=80)
    details = JSONField(default=dict)


class Rollup(BaseModel):
    """Report figures counted per day (span "day") and per calendar month (span "month",
    day = the 1st), so the dashboard reads a few thousand rows whatever the data's size.
    Span "now" holds the latest snapshot of leads per stage."""
    span = pw.CharField(max_length=5)
    figure = pw.CharField(max_length=20)
    day = pw.DateField()
    key = pw.CharField(max_length=200)
    count = pw.IntegerField()
    refreshed_at = UTCDateTimeField(null=True)


    class Meta:
        indexes = ((("span", "figure", "day", "key", "count"), False),)


class DirtyDay(BaseModel):
    """A day whose rollups are out of date; version counts the changes since it was marked,
    so a refresh only clears it when nothing changed meanwhile."""
    day = pw.DateField(primary_key=True)
    version = pw.IntegerField(default=1)


class RateCount(BaseModel):
    """Rate-limit counts kept in the database while Redis is away (service.core.ratelimit)."""
    bucket = pw.CharField(max_length=120)
    window = pw.BigIntegerField()  # its start, in seconds since the epoch
    count = pw.IntegerField(default=0)


    class Meta:
        primary_key = pw.CompositeKey("bucket", "window")


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    name = pw.CharField()
    applied_at = UTCDateTimeField(default=utcnow)
