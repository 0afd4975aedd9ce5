"""Migrations: a database at version 1 is brought to the current schema."""

from __future__ import annotations

from datetime import timedelta

from peewee import SqliteDatabase

from service.core.db import AutoIncrementField, db
from service.core.models import (
    Activity,
    Handoff,
    InboundEvent,
    Lead,
    LeadMerge,
    OutboxEmail,
    Rep,
    SchemaVersion,
)
from service.leads.gdpr import erase_lead
from service.leads.merge import merge_leads
from service.ops import migrations
from service.ops.migrations import (
    MIGRATIONS,
    TABLES_V2,
    TABLES_V3,
    TABLES_V8,
    current_version,
    migrate,
)
from tests.factories import new_lead, promoted

TABLES = {int(name.removeprefix("TABLES_V")): getattr(migrations, name)
          for name in dir(migrations) if name.startswith("TABLES_V")}
LATER = [model for version, models in TABLES.items() if version > 14 for model in models]
WITH_IDS = [model for version, models in TABLES.items() if version <= 14  # rebuilt by 14
            for model in models
            if isinstance(model._meta.primary_key, AutoIncrementField)]


def test_upgrade_from_version_1(app):
    db.drop_tables(TABLES_V2 + TABLES_V3)
    for index in db.get_indexes("handoff"):
        if index.name.startswith(("handoff_promoted_day", "handoff_decided_day")):
            db.execute_sql(f'DROP INDEX "{index.name}"')
    for table, column in (("team", "fallback_email"), ("rep", "away_from"), ("rep", "away_until"),
                          ("handoff", "origin"), ("handoff", "outcome"),
                          ("handoff", "remind_due_at"), ("handoff", "escalate_due_at"),
                          ("handoff", "reassign_due_at"), ("handoff", "lead_source"),
                          ("handoff", "lead_age_minutes"), ("handoff", "first_due_at"),
                          ("handoff", "lapsed_at")):
        db.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute_sql("DROP INDEX lead_stage_score_log")
    db.execute_sql("DROP INDEX lead_score_log")
    db.drop_tables(TABLES_V8)
    for column in ("retry_at", "failed_at"):
        db.execute_sql(f"ALTER TABLE outbox_email DROP COLUMN {column}")
    db.execute_sql("DROP INDEX handoff_status_sla_next_at")
    db.execute_sql("ALTER TABLE handoff DROP COLUMN sla_next_at")
    db.execute_sql('CREATE INDEX handoff_status_due_at ON handoff (status, due_at)')
    db.execute_sql("ALTER TABLE lead DROP COLUMN score_log")
    db.execute_sql("ALTER TABLE inbound_event DROP COLUMN delivery_id")
    SchemaVersion.delete().where(SchemaVersion.version > 1).execute()
    assert current_version() == 1
    assert "score_log" not in {c.name for c in db.get_columns("lead")}
    applied = migrate()
    assert applied == [f"{v:04d} {name}" for v, name, _ in MIGRATIONS[1:]]
    assert "score_log" in {c.name for c in db.get_columns("lead")}
    assert {"lead_stage_score_log", "lead_score_log"} <= {i.name for i in db.get_indexes("lead")}
    assert {"retry_at", "failed_at"} <= {c.name for c in db.get_columns("outbox_email")}
    assert db.table_exists("rollup") and db.table_exists("dirty_day")
    assert Lead.select().where(Lead.score_log.is_null()).count() == 0
    assert {"origin", "outcome", "sla_next_at"} <= {c.name for c in db.get_columns("handoff")}
    assert "handoff_status_sla_next_at" in {i.name for i in db.get_indexes("handoff")}
    indexes = {i.name for i in db.get_indexes("handoff")}
    assert "handoff_status_due_at" not in indexes
    assert sum(name.startswith(("handoff_promoted_day", "handoff_decided_day"))
               for name in indexes) == 2
    assert "lead_source" in {c.name for c in db.get_columns("handoff")}
    assert Handoff.select().count() == 0
    assert "delivery_id" in {c.name for c in db.get_columns("inbound_event")}
    assert migrate() == []


def test_upgrade_counts_earlier_reassignments_by_episode(app, rep):
    """Handoffs reassigned before version 13 each started their own window and cohort; the
    upgrade gives them their episode's promotion, first deadline, lapses and SLA figure."""
    from datetime import UTC, datetime, timedelta

    from service import lifecycle
    from service.core.models import Rep
    from service.handoffs.sla import Schedule
    from service.reports import figures as reports

    start = datetime(2026, 9, 10, 10, tzinfo=UTC)
    first = promoted(rep, at=start, window=timedelta(hours=24), activity=None)
    moved = start + timedelta(hours=36)
    jordan = Rep.create(email="jordan@example.com")
    second = lifecycle.reassign(first.id, rep_id=jordan.id, actor="sla", now=moved,
                                schedule=Schedule(moved + timedelta(hours=24), *[None] * 3))
    lifecycle.accept(second.id, bant={"need": "clear"}, notes="", actor="j",
                     now=moved + timedelta(hours=1), requires=[])
    Handoff.update(first_due_at=None, lapsed_at=None).execute()  # as version 12 left them
    Handoff.update(promoted_at=moved, promoted_day=moved.date(), sla_met=True,
                   decision_minutes=60).where(Handoff.id == second.id).execute()
    for index in db.get_indexes("handoff"):
        if index.name.startswith("handoff_promoted_day"):
            db.execute_sql(f'DROP INDEX "{index.name}"')
    db.execute_sql("CREATE INDEX handoff_promoted_day_origin_replaces_id ON handoff "
                   "(promoted_day, origin, replaces_id, status, sla_met)")  # version 7's
    SchemaVersion.delete().where(SchemaVersion.version >= 13).execute()
    migrate()
    reports_indexes = [i.columns for i in db.get_indexes("handoff")
                       if i.name.startswith("handoff_promoted_day")]
    assert reports_indexes == [["promoted_day", "origin", "reassigned_at", "status",
                                "lead_source", "definition_id", "rep_id", "lapsed_at",
                                "escalated_at", "lead_age_minutes"]]
    upgraded = Handoff.get_by_id(second.id)
    assert (upgraded.promoted_at, upgraded.first_due_at) == (start, start + timedelta(hours=24))
    assert (upgraded.sla_met, upgraded.decision_minutes) == (False, 37 * 60)
    assert Handoff.get_by_id(first.id).lapsed_at == start + timedelta(hours=24)
    span = reports.Range(start.date(), start.date() + timedelta(days=2), "month")
    assert reports.conversion(span, 0.2, 0.6)["rate"] == 1.0
    assert reports.sla(span)["by_rep"] == [("jordan@example.com", 1, 0, 0),
                                           ("riley.rep@example.com", 1, 1, 0)]


def ids_before_version_14() -> None:
    """Tables as earlier versions made them on SQLite: ids without AUTOINCREMENT, so a
    delete freed the highest id for the next row."""
    if isinstance(db.obj, SqliteDatabase):
        db.drop_tables(LATER + WITH_IDS)  # the later ones point at the earlier ones
        for model in WITH_IDS:
            create, _ = model._schema._create_table().query()
            db.execute_sql(create.replace(" AUTOINCREMENT", ""))
            model._schema.create_indexes()
        db.create_tables(LATER)


def drop_public_ids() -> None:
    for table, column in (("lead", "public_id"), ("lead_merge", "merged_public_id")):
        db.execute_sql(f'DROP INDEX "{table}_{column}"')
        db.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    SchemaVersion.delete().where(SchemaVersion.version == 14).execute()


def test_upgrade_keeps_ids_and_never_reuses_them(app, now, tmp_path):
    ids_before_version_14()
    rep = Rep.create(email="riley.rep@example.com")
    ada, bob, cy = (new_lead(f"{name}@example.com", at=now) for name in ("ada", "bob", "cy"))
    handoff = promoted(rep, bob, at=now)
    erase_lead(cy.id, actor="dpo@example.com", data_dir=tmp_path, now=now)
    dee = new_lead("dee@example.com", at=now)
    sqlite = isinstance(db.obj, SqliteDatabase)
    assert (dee.id == cy.id) is sqlite, "SQLite gave the erased lead's id to the next one"
    eve = new_lead("eve@example.com", at=now)
    merge_leads(dee.id, eve.id, actor="mia@example.com", now=now)
    before = {model: sorted(model.select(model.id).tuples()) for model in WITH_IDS}
    activities = Activity.select().where(Activity.lead == dee.id).count()
    drop_public_ids()

    assert migrate() == ["0014 links: ids never reused, and a public id for every lead"]
    assert {model: sorted(model.select(model.id).tuples()) for model in WITH_IDS} == before
    public_ids = [lead.public_id for lead in Lead.select()]
    assert len(set(public_ids)) == len(public_ids) == 3 and all(public_ids)
    assert Handoff.get_by_id(handoff.id).lead_id == bob.id
    assert LeadMerge.get().survivor_id == dee.id
    assert {"handoff_one_pending_per_lead"} <= {i.name for i in db.get_indexes("handoff")}
    assert {"outbox_unsent"} <= {i.name for i in db.get_indexes("outbox_email")}
    assert {"lead_public_id", "lead_email"} <= {i.name for i in db.get_indexes("lead")}
    if sqlite:
        tables = dict(db.execute_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        assert all("AUTOINCREMENT" in tables[m._meta.table_name] for m in WITH_IDS)
        partial = db.execute_sql("SELECT sql FROM sqlite_master WHERE name = ?",
                                 ("handoff_one_pending_per_lead",)).fetchone()[0]
        assert "WHERE" in partial
        assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute_sql("PRAGMA foreign_key_check").fetchall() == []
    erase_lead(dee.id, actor="dpo@example.com", data_dir=tmp_path, now=now)
    assert Activity.select().where(Activity.lead == dee.id).count() == 0 < activities
    later = now + timedelta(minutes=1)
    assert new_lead("fay@example.com", at=later).id > dee.id
    assert Lead.get(Lead.email == "fay@example.com").public_id not in public_ids
    assert OutboxEmail.select().count() == 1, "the rep's email about bob"
    # a process still running the previous version writes leads without a public id
    others = ", ".join(field.column_name for field in Lead._meta.sorted_fields
                       if field.name not in ("id", "email", "public_id"))
    db.execute_sql(f"INSERT INTO lead (email, {others}) SELECT 'gus@example.com', {others} "
                   f"FROM lead WHERE id = {bob.id}")
    assert Lead.get(Lead.email == "gus@example.com").public_id not in public_ids
    assert migrate() == []


def test_accepted_events_lose_autoincrement_and_keep_their_rows(app, now):
    """Version 26: the queue of accepted events is numbered by SQLite's rowid (its rows and
    indexes kept); new events still come after those waiting. PostgreSQL is left as it is."""
    sqlite = isinstance(db.obj, SqliteDatabase)
    if sqlite:  # the table as versions 14 to 25 made it
        db.drop_tables([InboundEvent])
        create, _ = InboundEvent._schema._create_table().query()
        db.execute_sql(create.replace("PRIMARY KEY", "PRIMARY KEY AUTOINCREMENT"))
        InboundEvent._schema.create_indexes()
    waiting = [InboundEvent.create(source="tracking:website", received_at=now, event="{}",
                                   partition=n) for n in (3, 5)]
    SchemaVersion.delete().where(SchemaVersion.version == 26).execute()

    assert migrate() == ["0026 intake: accepted events numbered by SQLite's rowid, without "
                         "AUTOINCREMENT (a queue)"]
    assert [(e.id, e.partition) for e in InboundEvent.select().order_by(InboundEvent.id)] == [
        (e.id, e.partition) for e in waiting]
    assert InboundEvent.create(source="s", received_at=now, event="{}").id > waiting[-1].id
    if sqlite:
        table = db.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'inbound_event'")
        assert "AUTOINCREMENT" not in table.fetchone()[0].upper()


def partition_index() -> bool:
    return any(i.columns == ["partition", "id"] for i in db.get_indexes("inbound_event"))


def test_accepted_events_are_indexed_by_partition_on_postgresql_only(app, now):
    """Version 27: versions 24 to 26 indexed (partition, id) on both databases; SQLite's one
    recorder never reads by partition, so there the index goes."""
    sqlite = isinstance(db.obj, SqliteDatabase)
    db.execute_sql('CREATE INDEX IF NOT EXISTS "inbound_event_partition_id" '
                   'ON "inbound_event" ("partition", "id")')  # as version 26 left it
    waiting = InboundEvent.create(source="tracking:website", received_at=now, event="{}",
                                  partition=7)
    SchemaVersion.delete().where(SchemaVersion.version == 27).execute()

    assert migrate() == ["0027 intake: accepted events indexed by partition on PostgreSQL "
                         "only, where recorders lease partitions"]
    assert partition_index() is not sqlite
    assert InboundEvent.get_by_id(waiting.id).partition == 7
    assert migrate() == []
