"""Tables. Stages and statuses change only through service.lifecycle."""

from __future__ import annotations

import secrets

import peewee as pw

from service.core import jsontext
from service.core.db import BaseModel, RandomTextField, UTCDateTimeField, utcnow
from service.core.statuses import EnrollmentStatus, HandoffStatus


class JSONField(pw.TextField):
    def db_value(self, value):
        return None if value is None else jsontext.dumps(value, sort_keys=True)

    def python_value(self, value):
        return None if value is None else jsontext.loads(value)


def new_public_id() -> str:
    return secrets.token_urlsafe(12)


def new_session_token() -> str:
    return secrets.token_hex(16)


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

    class Meta:
        indexes = ((("stage", "score_log"), False),)

    EDITABLE = ("first_name", "last_name", "company", "title", "phone", "country",
                "company_size", "industry", "utm_source", "time_zone")

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


class Team(BaseModel):
    name = pw.CharField(unique=True)
    manager_email = pw.CharField(default="")
    fallback_email = pw.CharField(default="")

    def __str__(self) -> str:
        return self.name


class Rep(BaseModel):
    email = pw.CharField(max_length=254, unique=True)
    name = pw.CharField(default="")
    team = pw.ForeignKeyField(Team, backref="reps", null=True, on_delete="SET NULL")
    manager_email = pw.CharField(default="")
    time_zone = pw.CharField(default="UTC")
    weight = pw.IntegerField(default=1)
    capacity = pw.IntegerField(default=0)
    active = pw.BooleanField(default=True)
    out_of_office = pw.BooleanField(default=False)
    away_from = pw.DateField(null=True)
    away_until = pw.DateField(null=True)

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email

    def is_away(self, day) -> bool:
        """Out of office by the flag, or by the dates (both inclusive)."""
        if self.out_of_office:
            return True
        if self.away_from is None and self.away_until is None:
            return False
        return ((self.away_from is None or self.away_from <= day)
                and (self.away_until is None or day <= self.away_until))


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


class Handoff(BaseModel):
    STATUSES = tuple(HandoffStatus)
    lead = pw.ForeignKeyField(Lead, backref="handoffs", on_delete="CASCADE")
    rep = pw.ForeignKeyField(Rep, backref="handoffs")
    promoted_by = pw.CharField()
    promoted_at = UTCDateTimeField()
    note = pw.TextField(default="")
    definition = pw.ForeignKeyField(Definition, null=True)
    due_at = UTCDateTimeField()
    status = pw.CharField(max_length=16, default=HandoffStatus.PENDING)
    decided_at = UTCDateTimeField(null=True)
    decided_by = pw.CharField(default="")
    budget = pw.CharField(max_length=16, default="")
    authority = pw.CharField(max_length=16, default="")
    need = pw.CharField(max_length=16, default="")
    timeline = pw.CharField(max_length=16, default="")
    reason = pw.CharField(max_length=64, default="")
    notes = pw.TextField(default="")
    sla_met = pw.BooleanField(null=True)
    reminded_at = UTCDateTimeField(null=True)
    escalated_at = UTCDateTimeField(null=True)
    reassigned_at = UTCDateTimeField(null=True)
    replaces = pw.ForeignKeyField("self", null=True, backref="replaced_by")
    origin = pw.CharField(max_length=16, default="inbound")
    outcome = pw.CharField(max_length=80, default="")
    remind_due_at = UTCDateTimeField(null=True)
    escalate_due_at = UTCDateTimeField(null=True)
    reassign_due_at = UTCDateTimeField(null=True)
    sla_next_at = UTCDateTimeField(null=True)
    promoted_day = pw.DateField(null=True)
    decided_day = pw.DateField(null=True)
    decision_minutes = pw.IntegerField(null=True)
    lead_source = pw.CharField(max_length=64, default="")
    lead_age_minutes = pw.IntegerField(null=True)
    # One MQL episode runs from the promotion to the final decision across every handoff
    # that replaced another: each step keeps the episode's promoted_at/promoted_day and the
    # first step's deadline (first_due_at), so "SLA met" and time to decision are the
    # episode's. lapsed_at: this step's own deadline passed undecided (a breach of its rep).
    first_due_at = UTCDateTimeField(null=True)
    lapsed_at = UTCDateTimeField(null=True)

    class Meta:
        # The reports read only these two covering indexes, never the table: every figure
        # the dashboard shows for a cohort (promoted) or a period's decisions (decided).
        indexes = ((("status", "sla_next_at"), False),
                   (("promoted_day", "origin", "reassigned_at", "status", "lead_source",
                     "definition", "rep", "lapsed_at", "escalated_at", "lead_age_minutes"),
                    False),
                   (("decided_day", "origin", "status", "sla_met", "decision_minutes",
                     "reason"), False))


    def episode(self) -> list[Handoff]:
        """The handoffs of this MQL episode up to this one, the first first."""
        steps = [self]
        while steps[-1].replaces_id is not None:
            steps.append(Handoff.get_by_id(steps[-1].replaces_id))
        return steps[::-1]


Handoff.add_index(Handoff.lead, unique=True, where=(Handoff.status == HandoffStatus.PENDING),
                  name="handoff_one_pending_per_lead")


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


class OutboxEmail(BaseModel):
    template = pw.CharField(max_length=64)
    to_address = pw.CharField(max_length=254)
    to_name = pw.CharField(default="")
    context = JSONField(default=dict)
    message_id = pw.CharField(unique=True)
    lead = pw.ForeignKeyField(Lead, null=True, backref="emails", on_delete="SET NULL")
    handoff = pw.ForeignKeyField(Handoff, null=True, backref="emails", on_delete="SET NULL")
    created_at = UTCDateTimeField(default=utcnow)
    claimed_at = UTCDateTimeField(null=True)
    sent_at = UTCDateTimeField(null=True)
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(default="")
    subject = pw.TextField(default="")
    body_text = pw.TextField(default="")
    body_html = pw.TextField(default="")
    to_prospect = pw.BooleanField(default=False)
    enrollment = pw.IntegerField(null=True, index=True)
    step = pw.IntegerField(null=True)
    skipped_at = UTCDateTimeField(null=True)
    skip_reason = pw.CharField(default="")
    retry_at = UTCDateTimeField(null=True)  # a transient failure: not before then
    failed_at = UTCDateTimeField(null=True)  # refused for good (5xx), or retries used up


OutboxEmail.add_index(OutboxEmail.created_at, where=OutboxEmail.sent_at.is_null(),
                      name="outbox_unsent")


class IntegrationKey(BaseModel):
    """A credential for an intake source: a webhook signing secret (kept, to verify HMACs)
    or a tracking write key (kept only as a hash)."""
    KINDS = ("webhook", "write_key", "api")
    kind = pw.CharField(max_length=16)
    source = pw.CharField(max_length=64)
    secret = pw.CharField(default="")
    key_hash = pw.CharField(max_length=64, null=True, unique=True)
    hint = pw.CharField(max_length=16, default="")
    active = pw.BooleanField(default=True)
    created_by = pw.CharField(default="")
    created_at = UTCDateTimeField(default=utcnow)
    owner = pw.CharField(max_length=254, default="")  # an API key's owner: who it acts for

    class Meta:
        indexes = ((("kind", "source"), False),)


class Delivery(BaseModel):
    """One row per delivery id (webhook-id, Segment messageId): re-deliveries collide here."""
    source = pw.CharField(max_length=80)
    delivery_id = pw.CharField(max_length=200)
    received_at = UTCDateTimeField()

    class Meta:
        indexes = ((("source", "delivery_id"), True),)

    @classmethod
    def stored_id(cls, delivery_id: str) -> str:
        """A delivery id as this table holds it: cut to the column's width."""
        return delivery_id[:cls.delivery_id.max_length]


class Identity(BaseModel):
    """A tracking id (anonymousId or userId) known to belong to a lead."""
    kind = pw.CharField(max_length=16)
    value = pw.CharField(max_length=200)
    lead = pw.ForeignKeyField(Lead, backref="identities", on_delete="CASCADE")

    class Meta:
        indexes = ((("kind", "value"), True),)


class AnonymousActivity(BaseModel):
    """Tracking activity from a visitor not yet tied to an email; moved on identify."""
    anonymous_id = pw.CharField(max_length=200, index=True)
    type = pw.CharField(max_length=64)
    occurred_at = UTCDateTimeField()
    source = pw.CharField(max_length=64)
    properties = JSONField(default=dict)
    raw = JSONField(null=True)
    created_at = UTCDateTimeField(default=utcnow)


class InboundEvent(BaseModel):
    """A tracking message accepted (answered 200) and waiting for a worker to record it:
    identity, lead, activity and score. `failed` says why it could not be recorded, once
    recording it on its own failed; such rows stay for an operator to read."""
    source = pw.CharField(max_length=80)
    received_at = UTCDateTimeField()
    # Claimed in Delivery when recorded (a re-delivery is dropped then), so accepting only
    # appends rows. Null for rows accepted before version 12, claimed at once.
    delivery_id = pw.CharField(max_length=200, null=True)
    # Event.to_json(), encoded before the accepting transaction opens
    event = pw.TextField()
    failed = pw.TextField(null=True)


class LeadMerge(BaseModel):
    survivor = pw.ForeignKeyField(Lead, backref="merges", on_delete="CASCADE")
    merged_id = pw.IntegerField()
    merged_email = pw.CharField(max_length=254)
    # links made for the merged lead lead to the survivor; null for merges before version 14
    merged_public_id = pw.CharField(max_length=32, null=True, index=True)
    snapshot = JSONField(default=dict)
    actor = pw.CharField()
    at = UTCDateTimeField()


class IntakeStat(BaseModel):
    """Daily counters of what intake dropped (honeypot hits, rate-limited posts)."""
    day = pw.CharField(max_length=10)
    source = pw.CharField(max_length=80)
    event = pw.CharField(max_length=32)
    count = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("day", "source", "event"), True),)


class AssignmentCursor(BaseModel):
    """Round-robin position per pool, kept in the database so every process shares it."""
    pool = pw.CharField(max_length=80, unique=True)
    position = pw.IntegerField(default=0)


class Enrollment(BaseModel):
    """A lead's place in a nurture sequence: the next step to send and when."""
    lead = pw.ForeignKeyField(Lead, backref="enrollments", on_delete="CASCADE")
    sequence = pw.CharField(max_length=64)
    step = pw.IntegerField(default=0)
    next_due_at = UTCDateTimeField(null=True)
    status = pw.CharField(max_length=16, default=EnrollmentStatus.ACTIVE)
    stop_reason = pw.CharField(max_length=32, default="")
    started_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        indexes = ((("status", "next_due_at"), False), (("lead", "status"), False))


class Suppression(BaseModel):
    """An address never to send prospect mail to. Kept by hash so an erased lead's entry
    holds no address."""
    email_hash = pw.CharField(max_length=64, unique=True)
    email = pw.CharField(max_length=254, default="")
    reason = pw.CharField(max_length=32)
    source = pw.CharField(max_length=64, default="")
    at = UTCDateTimeField()


class EmailEvent(BaseModel):
    """A delivery event reported by an email provider, with its raw payload."""
    provider = pw.CharField(max_length=16)
    kind = pw.CharField(max_length=16)
    email = pw.CharField(max_length=254, index=True)
    at = UTCDateTimeField()
    detail = pw.TextField(default="")
    raw = JSONField(null=True)


class EmailClick(BaseModel):
    outbox = pw.IntegerField(index=True)
    url = pw.TextField()
    at = UTCDateTimeField()


class AuditEvent(BaseModel):
    """Who did what to which record, for the panel's read-only audit log."""
    at = UTCDateTimeField(index=True)
    actor = pw.CharField()
    action = pw.CharField(max_length=64)
    subject = pw.CharField(max_length=80)
    details = JSONField(default=dict)


class DigestLog(BaseModel):
    """One row per weekly digest sent, so several schedulers send it once."""
    week = pw.CharField(max_length=10, unique=True)
    sent_at = UTCDateTimeField()


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
    """Rate-limit counts kept in the database while Redis is away (service.ratelimit)."""
    bucket = pw.CharField(max_length=120)
    window = pw.BigIntegerField()  # its start, in seconds since the epoch
    count = pw.IntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("bucket", "window")


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    name = pw.CharField()
    applied_at = UTCDateTimeField(default=utcnow)


TABLES_V1 = [Lead, Activity, Team, Rep, User, Definition, Handoff, StageChange, OutboxEmail]
TABLES_V2 = [IntegrationKey, Delivery, Identity, AnonymousActivity, LeadMerge, IntakeStat,
             AssignmentCursor]
TABLES_V3 = [AuditEvent]
TABLES_V5 = [Enrollment, Suppression, EmailEvent, EmailClick]
TABLES_V6 = [DigestLog]
TABLES_V8 = [Rollup, DirtyDay]
TABLES_V11 = [InboundEvent]
TABLES_V15 = [RateCount]
