"""Sales: teams, reps, handoffs and the assignment cursor."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, UTCDateTimeField
from service.core.models.leads import Definition, Lead
from service.core.statuses import HandoffStatus


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
    # Signed into the links to the rep's queue page; moved on to revoke them all.
    link_version = pw.IntegerField(default=0)
    # The rep's local day of the last morning email: one a day, claimed by a conditional update.
    morning_sent_on = pw.DateField(null=True)


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
    # the lead's first-touch UTM source and campaign when promoted, for the reports
    lead_utm_source = pw.CharField(default="")
    lead_utm_campaign = pw.CharField(default="")
    # One MQL episode runs from the promotion to the final decision across every handoff
    # that replaced another: each step keeps the episode's promoted_at/promoted_day and the
    # first step's deadline (first_due_at), so "SLA met" and time to decision are the
    # episode's. lapsed_at: this step's own deadline passed undecided (a breach of its rep).
    first_due_at = UTCDateTimeField(null=True)
    lapsed_at = UTCDateTimeField(null=True)


    class Meta:
        # The reports read these two covering indexes: every figure the dashboard shows for
        # a cohort (promoted) or a period's decisions (decided), but the UTM breakdown, which
        # reads a dirty day's rows. (status, due_at, promoted_by): the home page's overdue
        # handoffs, the longest overdue first (a marketer's own without reading the table),
        # never sorting every pending handoff (benchmarks/panel.py).
        indexes = ((("status", "sla_next_at"), False),
                   (("status", "due_at", "promoted_by"), False),
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


class AssignmentCursor(BaseModel):
    """Round-robin position per pool, kept in the database so every process shares it."""
    pool = pw.CharField(max_length=80, unique=True)
    position = pw.IntegerField(default=0)


Handoff.add_index(Handoff.lead, unique=True, where=(Handoff.status == HandoffStatus.PENDING),
                  name="handoff_one_pending_per_lead")
