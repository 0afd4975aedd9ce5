"""Versioned schema migrations, applied in order by `leadbridge init-db` (and `up`).
Add a new function to MIGRATIONS for every schema change; never edit an applied one.
Table creation uses the current models, so a step that adds a column must tolerate a
column that a fresh database already has (add_missing_columns does)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

from peewee import PostgresqlDatabase, SqliteDatabase, fn
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_operations

from service.content.seed import seed_content
from service.content.sequences import current_sequences, steps_of
from service.core.db import RANDOM_TEXT, AutoIncrementField, db, transaction, utcnow
from service.core.models import (
    Activity,
    AnonymousActivity,
    AssignmentCursor,
    AuditEvent,
    ContentVersion,
    Definition,
    Delivery,
    DigestLog,
    DirtyDay,
    EmailClick,
    EmailEvent,
    Enrollment,
    Handoff,
    HandoffMessage,
    Identity,
    InboundEmail,
    InboundEvent,
    IntakeStat,
    IntegrationKey,
    Lead,
    LeadMerge,
    OutboxEmail,
    RateCount,
    Rep,
    Rollup,
    SavedView,
    SchemaVersion,
    StageChange,
    Suppression,
    Team,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    new_session_token,
)
from service.core.runtime import runtime
from service.ops.schema import (
    add_missing_columns,
    create_indexes,
    foreign_key_problems,
    foreign_keys_off,
    rebuild_keyed_as_model,
)
from service.reports.rollups import mark_all_dirty

# The tables each version created, as the models define them now.
TABLES_V1 = [Lead, Activity, Team, Rep, User, Definition, Handoff, StageChange, OutboxEmail]
TABLES_V2 = [IntegrationKey, Delivery, Identity, AnonymousActivity, LeadMerge, IntakeStat,
             AssignmentCursor]
TABLES_V3 = [AuditEvent]
TABLES_V5 = [Enrollment, Suppression, EmailEvent, EmailClick]
TABLES_V6 = [DigestLog]
TABLES_V8 = [Rollup, DirtyDay]
TABLES_V11 = [InboundEvent]
TABLES_V15 = [RateCount]
TABLES_V16 = [InboundEmail, HandoffMessage]
TABLES_V17 = [WebhookEndpoint, WebhookEvent, WebhookDelivery]
TABLES_V20 = [SavedView]


def _initial() -> None:
    db.create_tables(TABLES_V1)


def _intake() -> None:
    db.create_tables(TABLES_V2)
    add_missing_columns(Lead, Lead.score_log)


def _handoffs() -> None:
    db.create_tables(TABLES_V3)
    add_missing_columns(Team, Team.fallback_email)
    add_missing_columns(Rep, Rep.away_from, Rep.away_until)
    add_missing_columns(Handoff, Handoff.origin, Handoff.outcome)


def _sla() -> None:
    add_missing_columns(Handoff, Handoff.remind_due_at, Handoff.escalate_due_at,
                        Handoff.reassign_due_at, Handoff.sla_next_at)
    db.execute_sql("DROP INDEX IF EXISTS handoff_status_due_at")


def _nurture() -> None:
    db.create_tables(TABLES_V5)
    add_missing_columns(Lead, Lead.time_zone, Lead.re_engaged_at)
    add_missing_columns(OutboxEmail, OutboxEmail.to_prospect, OutboxEmail.enrollment,
                        OutboxEmail.step, OutboxEmail.skipped_at, OutboxEmail.skip_reason)


def _reports() -> None:
    db.create_tables(TABLES_V6)
    add_missing_columns(Lead, Lead.last_activity_at)
    add_missing_columns(StageChange, StageChange.day)
    add_missing_columns(Handoff, Handoff.promoted_day, Handoff.decided_day,
                        Handoff.decision_minutes)
    db.execute_sql("DROP INDEX IF EXISTS stage_change_to_stage_at")
    StageChange.update(day=fn.DATE(StageChange.at)).where(StageChange.day.is_null()).execute()
    Handoff.update(promoted_day=fn.DATE(Handoff.promoted_at)).where(
        Handoff.promoted_day.is_null()).execute()
    Handoff.update(decided_day=fn.DATE(Handoff.decided_at)).where(
        Handoff.decided_at.is_null(False), Handoff.decided_day.is_null()).execute()
    latest = (Activity.select(fn.MAX(Activity.occurred_at)).where(Activity.lead == Lead.id))
    Lead.update(last_activity_at=latest).where(Lead.last_activity_at.is_null()).execute()


def _report_indexes() -> None:
    for name in ("handoff_promoted_day", "handoff_decided_day",
                 "stage_change_day_from_stage_to_stage"):
        db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    add_missing_columns(Handoff, Handoff.lead_source, Handoff.lead_age_minutes)
    rows = (Handoff.select(Handoff.id, Handoff.promoted_at, Lead.source, Lead.created_at)
            .join(Lead).where(Handoff.lead_age_minutes.is_null()).tuples())
    for handoff_id, promoted_at, source, created_at in rows:
        Handoff.update(lead_source=source,
                       lead_age_minutes=int((promoted_at - created_at).total_seconds() // 60)
                       ).where(Handoff.id == handoff_id).execute()
    create_indexes(Handoff)
    create_indexes(StageChange)


def _rollups() -> None:
    db.create_tables(TABLES_V8)
    mark_all_dirty()


def _send_retries() -> None:
    add_missing_columns(OutboxEmail, OutboxEmail.retry_at, OutboxEmail.failed_at)


def _score_index() -> None:
    if isinstance(db.obj, PostgresqlDatabase):
        db.execute_sql('ALTER TABLE "lead" ALTER COLUMN "score_log" TYPE double precision')
    db.execute_sql('CREATE INDEX IF NOT EXISTS "lead_score_log" ON "lead" ("score_log")')


def _inbound() -> None:
    db.create_tables(TABLES_V11)


def _inbound_delivery() -> None:
    add_missing_columns(InboundEvent, InboundEvent.delivery_id)


def _episodes() -> None:
    """Reports count MQL episodes: every step of a reassignment chain takes the episode's
    promotion time and first deadline; lapsed steps are stamped; decided episodes get SLA
    met and time to decision from the promotion; every figure is recounted."""
    add_missing_columns(IntegrationKey, IntegrationKey.owner)
    for index in db.get_indexes("handoff"):  # the reports' index of version 7, by replaces
        if {"promoted_day", Handoff.replaces.column_name} <= set(index.columns):
            db.execute_sql(f'DROP INDEX IF EXISTS "{index.name}"')
    add_missing_columns(Handoff, Handoff.first_due_at, Handoff.lapsed_at)
    Handoff.update(first_due_at=Handoff.due_at).where(Handoff.first_due_at.is_null()).execute()
    closed = fn.COALESCE(Handoff.reassigned_at, Handoff.decided_at)
    Handoff.update(lapsed_at=Handoff.due_at).where(
        Handoff.origin == "inbound", Handoff.lapsed_at.is_null(), closed > Handoff.due_at
    ).execute()
    chained = Handoff.select().where(Handoff.replaces.is_null(False)).order_by(Handoff.id)
    for step in chained:
        first = step
        while first.replaces_id is not None:
            first = Handoff.get_by_id(first.replaces_id)
        values = {"promoted_at": first.promoted_at, "promoted_day": first.promoted_day,
                  "first_due_at": first.due_at}
        if step.status in ("accepted", "rejected"):
            values["sla_met"] = step.decided_at <= first.due_at
            values["decision_minutes"] = int(
                (step.decided_at - first.promoted_at).total_seconds() // 60)
        Handoff.update(**values).where(Handoff.id == step.id).execute()
    # the sweep stamps pending steps when their deadline passes
    Handoff.update(sla_next_at=Handoff.due_at).where(
        Handoff.status == "pending", Handoff.lapsed_at.is_null(),
        Handoff.sla_next_at.is_null() | (Handoff.sla_next_at > Handoff.due_at)).execute()
    mark_all_dirty()


def _lasting_ids() -> None:
    """Ids of deleted rows never come back (SQLite reused the highest one), and every lead
    gets a random public id that its links carry."""
    _add_public_ids()
    add_missing_columns(LeadMerge, LeadMerge.merged_public_id)
    if isinstance(db.obj, SqliteDatabase):
        broken = set(foreign_key_problems())
        for model in TABLES_V1 + TABLES_V2 + TABLES_V3 + TABLES_V5 + TABLES_V6 + TABLES_V8 \
                + TABLES_V11:
            if isinstance(model._meta.primary_key, AutoIncrementField):
                rebuild_keyed_as_model(model)
        if set(foreign_key_problems()) - broken:
            raise RuntimeError("rebuilding the tables broke foreign keys; nothing was changed")


def _accounts() -> None:
    """Every user its own session token (which ends the sessions made before: their user
    ids carry none), and the rate-limit counts used while Redis is away."""
    add_missing_columns(User, User.session_token)
    for user_id in [row.id for row in User.select(User.id)]:
        User.update(session_token=new_session_token()).where(User.id == user_id).execute()
    db.create_tables(TABLES_V15)


def _add_public_ids() -> None:
    """Made by the database, each lead its own: PostgreSQL fills a column added with a
    volatile default row by row. SQLite adds no column with such a default: it is filled
    here, and the table rebuilt from the model gets the default and NOT NULL."""
    if "public_id" not in {column.name for column in db.get_columns("lead")}:
        migrator = SchemaMigrator.from_database(db.obj)
        if isinstance(db.obj, PostgresqlDatabase):
            run_operations(migrator.alter_add_column("lead", "public_id", Lead.public_id.clone(),
                                                     allow_not_null=True))
        else:
            db.execute_sql('ALTER TABLE "lead" ADD COLUMN "public_id" VARCHAR(32)')
            db.execute_sql(f'UPDATE "lead" SET "public_id" = {RANDOM_TEXT["sqlite"]}')
    add_missing_columns(Lead, Lead.public_id)  # its unique index


def _webhooks() -> None:
    """Endpoints, the event log and deliveries; each lead's count of its events, and the
    index that pages leads by when they changed."""
    db.create_tables(TABLES_V17)
    add_missing_columns(Lead, Lead.event_sequence)
    create_indexes(Lead, over={"updated_at"})


def _workspace() -> None:
    """Each user's saved views of the lists, and the indexes the lists' filters read at a
    million leads: leads by source and by campaign (newest first), pending handoffs by due
    time (the Pending and Overdue lists, and their due filter; the index of migration 22)."""
    db.create_tables(TABLES_V20)
    create_indexes(Lead, over={"source", "utm_campaign"})
    create_indexes(Handoff, over={"due_at"})


def _utm_reports() -> None:
    add_missing_columns(Handoff, Handoff.lead_utm_source, Handoff.lead_utm_campaign)
    create_indexes(Handoff, {"promoted_by"})
    for column in ("utm_source", "utm_campaign"):
        of_lead = Lead.select(getattr(Lead, column)).where(Lead.id == Handoff.lead)
        Handoff.update({getattr(Handoff, f"lead_{column}"): fn.COALESCE(of_lead, "")}).execute()
    mark_all_dirty()


def _step_ids() -> None:
    """Enrollments remember the id of the last step they sent, emails the step they are:
    filled from each sequence's current version by position (the place steps were sent
    by until now; a version without ids reads its steps as s1, s2, …). An enrollment past
    the last step keeps the last one's id: it finishes, as it did."""
    add_missing_columns(Enrollment, Enrollment.last_step_id)
    add_missing_columns(OutboxEmail, OutboxEmail.step_id)
    for name, row in current_sequences().items():
        ids = [step["id"] for step in steps_of(row)]
        enrollments = Enrollment.select(Enrollment.id).where(Enrollment.sequence == name)
        for number, step_id in enumerate(ids, 1):
            OutboxEmail.update(step_id=step_id).where(
                OutboxEmail.enrollment.in_(enrollments), OutboxEmail.step == number - 1
            ).execute()
            Enrollment.update(last_step_id=step_id).where(
                Enrollment.sequence == name, (Enrollment.step == number) if number < len(ids)
                else (Enrollment.step >= number)).execute()


def _partitions() -> None:
    """Accepted events carry their visitor's partition; parked activity its userId, so
    a call with only a userId, recorded before the identify that links it (in another
    partition, by another recorder), waits for it instead of being dropped."""
    add_missing_columns(InboundEvent, InboundEvent.partition)
    add_missing_columns(AnonymousActivity, AnonymousActivity.user_id)


def _inbound_rowids() -> None:
    """Accepting appends to a queue that recording empties: nothing names an accepted event
    after it is gone, so its id may come back, and AUTOINCREMENT's bookkeeping was 40 % of
    an insert. PostgreSQL's sequence is the same either way."""
    if isinstance(db.obj, SqliteDatabase):
        rebuild_keyed_as_model(InboundEvent)


def _partition_index_where_leased() -> None:
    """Only PostgreSQL's recorders read accepted events by partition, each its lease's; on
    SQLite one recorder reads them all in id order. There the index only cost: every batch
    accepted wrote a leaf page of it per partition, a third of what accepting cost."""
    if isinstance(db.obj, SqliteDatabase):
        db.execute_sql('DROP INDEX IF EXISTS "inbound_event_partition_id"')
    else:
        db.execute_sql('CREATE INDEX IF NOT EXISTS "inbound_event_partition_id" '
                       'ON "inbound_event" ("partition", "id")')


MIGRATIONS: list[tuple[int, str, Callable[[], None]]] = [
    (1, "initial schema", _initial),
    (2, "intake: keys, deliveries, identities, merges, scores", _intake),
    (3, "handoffs: fallback owners, away dates, origin and outcome, audit", _handoffs),
    (4, "sla: reminder, escalation and reassignment times", _sla),
    (5, "nurture: enrollments, suppression, email events and clicks", _nurture),
    (6, "reports: day keys, decision times, last activity, digest log", _reports),
    (7, "reports: covering indexes on handoffs", _report_indexes),
    (8, "reports: daily and monthly rollups", _rollups),
    (9, "outbox: retry times and permanent failures", _send_retries),
    (10, "leads: score as a double, indexed for the list sorted by score", _score_index),
    (11, "intake: tracking messages accepted and waiting to be recorded", _inbound),
    (12, "intake: message ids claimed when recorded, not when accepted", _inbound_delivery),
    (13, "reports count MQL episodes across reassignments; API keys name their owner",
     _episodes),
    (14, "links: ids never reused, and a public id for every lead", _lasting_ids),
    (15, "accounts: sessions revocable per user; login limits without Redis", _accounts),
    (16, "replies: email received, and the thread on each handoff",
     lambda: db.create_tables(TABLES_V16)),
    (17, "webhooks: endpoints, events and deliveries; leads paged by change", _webhooks),
    (18, "leads: the first touch's UTM campaign", lambda: add_missing_columns(
        Lead, Lead.utm_campaign)),
    (19, "content: sequences, prospect templates and reject reasons edited in the panel",
     lambda: db.create_tables([ContentVersion])),
    (20, "panel: saved views; lists filtered by source, campaign and due time", _workspace),
    (21, "reps: revocable links to their queue, the day of their last morning email",
     lambda: add_missing_columns(Rep, Rep.link_version, Rep.morning_sent_on)),
    (22, "reports: UTM source and campaign kept on handoffs, open steps per rep; overdue "
         "handoffs indexed", _utm_reports),
    (23, "nurture: steps keep an id; enrollments go on after the last step they sent",
     _step_ids),
    (24, "intake: accepted events partitioned by visitor, recorded in parallel; activity "
         "with only a userId parked until it is identified", _partitions),
    (25, "intake: delivery ids pruned after the dedupe window, by when they were received",
     lambda: create_indexes(Delivery, over={"received_at"})),
    (26, "intake: accepted events numbered by SQLite's rowid, without AUTOINCREMENT (a queue)",
     _inbound_rowids),
    (27, "intake: accepted events indexed by partition on PostgreSQL only, where recorders "
         "lease partitions", _partition_index_where_leased),
]
REBUILDS_TABLES = {14}  # run with foreign keys off


def migrate() -> list[str]:
    """Apply pending migrations, then write the first version of the content config.toml
    seeds where none exists yet; return the names of the migrations applied."""
    db.create_tables([SchemaVersion])
    done = {row.version for row in SchemaVersion.select(SchemaVersion.version)}
    applied = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        with foreign_keys_off() if version in REBUILDS_TABLES else nullcontext():
            with transaction():
                step()
                SchemaVersion.create(version=version, name=name)
        applied.append(f"{version:04d} {name}")
    if runtime.settings is not None:
        seed_content(runtime.settings, now=utcnow())
    return applied


def current_version() -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0
