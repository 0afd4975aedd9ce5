"""`leadbridge partition-activity`: on PostgreSQL the activity table becomes monthly
partitions (rows moved, a default partition, the next months made ahead) and everything that
records or reads activity keeps working; re-running is a no-op. On SQLite it refuses in one
line. The test asserts whichever the suite's database is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import time_machine

from service.core.db import db
from service.core.models import Activity, Lead
from service.core.runtime import runtime
from service.intake.keys import create_key
from service.leads.gdpr import erase_lead
from service.leads.scoring import Policy, rescore_all
from service.ops.activity_partitions import partition_activity
from service.reports import today
from tests.conftest import DATABASE_URL, logged_in, run_cli, run_worker

OCTOBER = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def track(client, write_key: str, at: datetime, event: str, email: str, message_id: str):
    with time_machine.travel(at, tick=False):
        response = client.post("/v1/track", json={
            "writeKey": write_key, "userId": email, "event": event, "messageId": message_id,
            "context": {"traits": {"email": email}}})
        assert response.status_code == 200
        run_worker()


def partition_of_each() -> dict[str, str]:
    """Each activity's message type and lead, by the partition holding its row."""
    rows = db.execute_sql("SELECT a.tableoid::regclass::text, l.email, a.type "
                          "FROM activity a JOIN lead l ON l.id = a.lead_id").fetchall()
    return {f"{email} {kind}": partition for partition, email, kind in rows}


def partitions() -> set[str]:
    return {row[0] for row in db.execute_sql(
        "SELECT inhrelid::regclass::text FROM pg_inherits "
        "WHERE inhparent = 'activity'::regclass").fetchall()}


def test_partition_activity(app, settings_overrides, now):
    write_key = create_key("write_key", "website", sources=["website"], actor="t", now=now)[1]
    client = app.test_client()
    track(client, write_key, OCTOBER, "Webinar Registered", "ada@example.com", "m-1")
    track(client, write_key, NOVEMBER, "Trial Started", "ada@example.com", "m-2")
    if not DATABASE_URL:
        result = run_cli(app, settings_overrides, "partition-activity")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "Error: partition-activity needs PostgreSQL: SQLite has no table partitioning, "
            "and the activity table stays as it is"]
        assert Activity.select().count() == 2
        return
    result = partition_activity(months_ahead=2, now=NOVEMBER)
    assert (result.converted, result.rows_moved) == (True, 2)
    assert result.created == ["activity_y2026m10", "activity_y2026m11", "activity_y2026m12",
                              "activity_y2027m01"]
    assert partitions() == {"activity_y2026m10", "activity_y2026m11", "activity_y2026m12",
                            "activity_y2027m01", "activity_default"}
    assert partition_of_each() == {"ada@example.com webinar_registered": "activity_y2026m10",
                                   "ada@example.com trial_signup": "activity_y2026m11"}

    # recorded through the real intake path after the conversion: into their month
    track(client, write_key, NOVEMBER, "Webinar Registered", "bo@example.com", "m-3")
    track(client, write_key, DECEMBER, "Trial Started", "bo@example.com", "m-4")
    track(client, write_key, DECEMBER, "Trial Started", "bo@example.com", "m-4")
    placed = partition_of_each()
    assert placed["bo@example.com trial_signup"] == "activity_y2026m12"
    assert Activity.select().count() == len(placed) == 4, "the re-delivery still dropped"
    ada = Lead.get(Lead.email == "ada@example.com")
    trial = Activity.get(Activity.lead == ada, Activity.type == "trial_signup")
    assert Activity.get_by_id(trial.id).lead_id == ada.id, "ids stay unique across months"

    # the lead page's timeline, the home page's reasons and rescoring read them
    policy = Policy.from_settings(runtime.settings)
    with time_machine.travel(DECEMBER, tick=False):
        page = logged_in(app, "mia@example.com", "admin", DECEMBER).get(
            f"/admin/lead/details/?id={ada.id}")
        assert page.status_code == 200
        assert "webinar_registered" in page.text and "trial_signup" in page.text
        assert {kind for kind, _ in today.why(ada.id, policy, DECEMBER)} == {
            "webinar_registered", "trial_signup"}
        assert rescore_all(policy, now=DECEMBER) >= 2

    # rerun: nothing to do (the command, as cron runs it, on today's date)
    assert partition_activity(months_ahead=1, now=DECEMBER).created == []
    again = run_cli(app, settings_overrides, "partition-activity", "--months-ahead", "1")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("activity is partitioned by month already; ")
    assert partition_activity(months_ahead=1, now=DECEMBER).created == []
    assert {"activity_y2026m10", "activity_default"} <= partitions()
    # an event far ahead waits in the default partition until its month is made
    track(client, write_key, datetime(2027, 3, 9, tzinfo=UTC), "Trial Started",
          "cy@example.com", "m-5")
    assert partition_of_each()["cy@example.com trial_signup"] == "activity_default"
    later = partition_activity(months_ahead=1, now=datetime(2027, 2, 1, tzinfo=UTC))
    assert later.created == ["activity_y2027m02", "activity_y2027m03"]
    assert partition_of_each()["cy@example.com trial_signup"] == "activity_y2027m03"

    # the foreign key to lead still cascades
    erase_lead(ada.id, actor="test", data_dir=Path(settings_overrides["data_dir"]), now=DECEMBER)
    assert not Activity.select().where(Activity.lead == ada.id).exists()
