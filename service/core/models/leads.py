"""Leads, their activity and stage history, the MQL/SQL definitions, merges."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, RandomTextField, UTCDateTimeField, utcnow
from service.core.models.fields import JSONField, new_public_id


class Lead(BaseModel):
    email = pw.CharField(max_length=254, unique=True)
    # Random and never reused: every signed link names it beside the lead's id, so a link
    # outlives neither an erasure nor a row that took the id afterwards.
    public_id = RandomTextField(max_length=32, unique=True, default=new_public_id)
    first_name = pw.CharField(default="")
    last_name = pw.CharField(default="")
    company = pw.CharField(default="")
    title = pw.CharField(default="")
    phone = pw.CharField(default="")
    country = pw.CharField(default="")
    company_size = pw.CharField(default="")
    industry = pw.CharField(default="")
    source = pw.CharField(default="")
    utm_source = pw.CharField(default="")
    utm_campaign = pw.CharField(default="")
    stage = pw.CharField(max_length=16, index=True)
    stage_changed_at = UTCDateTimeField()
    # 8-byte float everywhere (FloatField is 4-byte REAL on PostgreSQL, and score updates
    # are conditional on the exact value read); indexed for the leads list sorted by score
    score_log = pw.DoubleField(null=True, index=True)
    time_zone = pw.CharField(default="")
    re_engaged_at = UTCDateTimeField(null=True, index=True)
    last_activity_at = UTCDateTimeField(null=True, index=True)
    created_at = UTCDateTimeField(default=utcnow, index=True)
    updated_at = UTCDateTimeField(default=utcnow)
    # How many events (webhooks, /api/v1/events) this lead has had: each event's sequence.
    event_sequence = pw.IntegerField(default=0)


    class Meta:
        indexes = ((("stage", "score_log"), False), (("updated_at", "id"), False),
                   (("source", "created_at"), False), (("utm_campaign", "created_at"), False))


    EDITABLE = ("first_name", "last_name", "company", "title", "phone", "country",
                "company_size", "industry", "utm_source", "utm_campaign", "time_zone")


    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class Activity(BaseModel):
    lead = pw.ForeignKeyField(Lead, backref="activities", on_delete="CASCADE")
    type = pw.CharField(max_length=64)
    occurred_at = UTCDateTimeField()
    source = pw.CharField(max_length=64)
    properties = JSONField(default=dict)
    raw = JSONField(null=True)
    delivery_key = pw.CharField(max_length=200, null=True, unique=True)
    created_at = UTCDateTimeField(default=utcnow)


    class Meta:
        indexes = ((("lead", "occurred_at"), False),)


class Definition(BaseModel):
    kind = pw.CharField(max_length=8)
    version = pw.IntegerField()
    text = pw.TextField()
    agreed_by_marketing = pw.CharField(default="")
    agreed_by_sales = pw.CharField(default="")
    agreed_at = UTCDateTimeField(default=utcnow)


    class Meta:
        indexes = ((("kind", "version"), True),)


    @classmethod
    def current(cls, kind: str) -> Definition | None:
        return cls.select().where(cls.kind == kind).order_by(cls.version.desc()).first()


    def __str__(self) -> str:
        return f"{self.kind.upper()} v{self.version}"


class StageChange(BaseModel):
    lead = pw.ForeignKeyField(Lead, backref="stage_changes", on_delete="CASCADE")
    from_stage = pw.CharField(max_length=16, null=True)
    to_stage = pw.CharField(max_length=16)
    at = UTCDateTimeField()
    day = pw.DateField(null=True)
    actor = pw.CharField()
    reason = pw.CharField(default="")


    class Meta:
        indexes = ((("lead", "at"), False), (("to_stage", "day"), False),
                   (("from_stage", "day", "to_stage"), False))


class LeadMerge(BaseModel):
    survivor = pw.ForeignKeyField(Lead, backref="merges", on_delete="CASCADE")
    merged_id = pw.IntegerField()
    merged_email = pw.CharField(max_length=254)
    # links made for the merged lead lead to the survivor; null for merges before version 14
    merged_public_id = pw.CharField(max_length=32, null=True, index=True)
    snapshot = JSONField(default=dict)
    actor = pw.CharField()
    at = UTCDateTimeField()
