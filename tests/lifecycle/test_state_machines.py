"""Handoff and enrollment statuses are state machines: each table refuses what it does not
allow (a decided handoff is never decided again, a finished or stopped enrollment never
runs again), and no module outside service/lifecycle writes a status (a source scan)."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest

from service import lifecycle
from service.core.errors import AlreadyDecided, IllegalTransition
from service.core.models import Enrollment, Handoff, Rep
from service.handoffs.sla import Schedule
from service.lifecycle import EnrollmentStatus, HandoffStatus
from tests.factories import new_lead, promoted

ROOT = Path(__file__).resolve().parents[2]
DECIDED = (HandoffStatus.ACCEPTED, HandoffStatus.REJECTED, HandoffStatus.WITHDRAWN)
BANT = {"budget": "likely", "authority": "influencer", "need": "clear", "timeline": "3_6m"}


def test_the_tables_lead_nowhere_from_an_end_state():
    for sources, targets in lifecycle.HANDOFF_TRANSITIONS.values():
        assert sources <= {None, HandoffStatus.PENDING}
        assert targets <= set(HandoffStatus)
    for sources, targets in lifecycle.ENROLLMENT_TRANSITIONS.values():
        assert sources <= {None, EnrollmentStatus.ACTIVE}
        assert targets <= set(EnrollmentStatus)
    reached = {t for _, targets in lifecycle.HANDOFF_TRANSITIONS.values() for t in targets}
    assert reached == set(HandoffStatus)
    reached = {t for _, targets in lifecycle.ENROLLMENT_TRANSITIONS.values() for t in targets}
    assert reached == set(EnrollmentStatus)


def decided_handoff(status, rep, now):
    handoff = promoted(rep, "barbara@liskov.example.com", at=now, activity=None,
                       window=timedelta(hours=24))
    {HandoffStatus.ACCEPTED: lambda: lifecycle.accept(
         handoff.id, bant=BANT, notes="", actor="r", now=now, requires=[]),
     HandoffStatus.REJECTED: lambda: lifecycle.reject(
         handoff.id, reason="later", outcome="nurture:default", notes="", actor="r", now=now),
     HandoffStatus.WITHDRAWN: lambda: lifecycle.withdraw(
         handoff.id, actor="m", reason="", now=now)}[status]()
    return Handoff.get_by_id(handoff.id)


def closing_transitions(handoff, now):
    other = Rep.create(email="otto@example.com", name="Otto")
    later = now + timedelta(hours=1)
    newcomer = new_lead("newcomer@example.com", at=now, activity=None)
    window = Schedule(later + timedelta(hours=24), None, None, None)
    return {
        "accept": lambda: lifecycle.accept(handoff.id, bant=BANT, notes="", actor="x",
                                           now=later, requires=[]),
        "reject": lambda: lifecycle.reject(handoff.id, reason="no", outcome="disqualify",
                                           notes="", actor="x", now=later),
        "withdraw": lambda: lifecycle.withdraw(handoff.id, actor="x", reason="", now=later),
        "reassign": lambda: lifecycle.reassign(handoff.id, rep_id=other.id, actor="x",
                                               now=later, schedule=window),
        "take_over": lambda: lifecycle.take_over(handoff.id, lead_id=newcomer.id, actor="x",
                                                 now=later),
    }


@pytest.mark.parametrize("status", DECIDED)
def test_a_decided_handoff_is_never_decided_again(app, rep, now, status):
    handoff = decided_handoff(status, rep, now)
    before = Handoff.select().where(Handoff.id == handoff.id).dicts().get()
    for name, transition in closing_transitions(handoff, now).items():
        with pytest.raises((AlreadyDecided, IllegalTransition), match="already decided"):
            transition()
        assert Handoff.select().where(Handoff.id == handoff.id).dicts().get() == before, name
    assert Handoff.select().count() == 1, "reassigning a decided handoff opened none"


def enrollment(now, steps_claimed=0, last=2):
    """An enrollment of a two-step sequence with `steps_claimed` of its steps sent."""
    lead = new_lead(f"e{Enrollment.select().count()}@example.com", at=now, activity=None)
    row = lifecycle.start_enrollment(lead.id, "default", first_due_at=now, now=now)
    for step in range(steps_claimed):
        following = now + timedelta(days=1) if step + 1 < last else None
        assert lifecycle.claim_step(row.id, step=step, next_due_at=following, now=now)
    return Enrollment.get_by_id(row.id)


def test_enrollments_run_from_active_to_finished_or_stopped(app, now):
    running = enrollment(now, steps_claimed=1)
    assert (running.status, running.step) == (EnrollmentStatus.ACTIVE, 1)
    done = enrollment(now, steps_claimed=2)
    assert (done.status, done.step, done.stop_reason) == ("finished", 2, "finished")
    assert lifecycle.stop_enrollments(running.lead_id, reason="sql", now=now) == 1
    assert Enrollment.get_by_id(running.id).status == "stopped"


@pytest.mark.parametrize("end", ["finished", "stopped"])
def test_a_finished_or_stopped_enrollment_never_runs_again(app, now, end):
    row = enrollment(now, steps_claimed=2 if end == "finished" else 0)
    if end == "stopped":
        lifecycle.stop_enrollments(row.lead_id, reason="unsubscribe", now=now)
    before = Enrollment.select().where(Enrollment.id == row.id).dicts().get()
    later = now + timedelta(days=3)
    for step in (0, 1, 2):
        assert not lifecycle.claim_step(row.id, step=step, next_due_at=later, now=later)
        assert not lifecycle.claim_step(row.id, step=step, next_due_at=None, now=later)
    assert lifecycle.stop_enrollments(row.lead_id, reason="merged", now=later) == 0
    survivor = enrollment(now)
    assert lifecycle.stop_merged_duplicates(row.lead_id, survivor_id=survivor.lead_id,
                                            now=later) == 0
    assert Enrollment.select().where(Enrollment.id == row.id).dicts().get() == before


def test_a_step_is_claimed_once(app, now):
    row = enrollment(now)
    assert lifecycle.claim_step(row.id, step=0, next_due_at=now, now=now)
    assert not lifecycle.claim_step(row.id, step=0, next_due_at=now, now=now)
    assert Enrollment.get_by_id(row.id).step == 1


# The source scan: a status is written only under service/lifecycle.

MODELS = {"Handoff", "Enrollment"}
CREATES = {"create", "insert", "insert_many", "insert_from", "replace", "replace_many",
           "get_or_create", "bulk_create"}  # a new row starts in a status, if only the default
WRITES = CREATES | {"update", "bulk_update"}
RAW_SQL = re.compile(r"(?is)\bupdate\s+\W?(handoff|enrollment)\W?\s+set\b.*\bstatus\b"
                     r"|\binsert\s+into\s+\W?(handoff|enrollment)\W?\s*\([^)]*\bstatus\b")


def _names_status(node: ast.AST) -> bool:
    """A keyword, a dict key or a column that names the status field."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.keyword) and inner.arg == "status":
            return True
        if isinstance(inner, ast.Dict) and any(
                isinstance(key, ast.Constant) and key.value == "status" for key in inner.keys):
            return True
        if (isinstance(inner, ast.Attribute) and inner.attr == "status"
                and isinstance(inner.value, ast.Name) and inner.value.id in MODELS):
            return True
    return False


def _creates_a_row(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr in CREATES
            and isinstance(func.value, ast.Name) and func.value.id in MODELS)


def _writes_a_model(call: ast.Call) -> bool:
    """Handoff.update(…), Enrollment.create(…), or a helper handed the model first
    (insert_rows(Handoff, …))."""
    func = call.func
    if (isinstance(func, ast.Attribute) and func.attr in WRITES
            and isinstance(func.value, ast.Name) and func.value.id in MODELS):
        return True
    return any(isinstance(arg, ast.Name) and arg.id in MODELS for arg in call.args[:1])


def _sets_status(call: ast.Call) -> bool:
    return _writes_a_model(call) and any(_names_status(part)
                                         for part in (*call.args, *call.keywords))


def status_writes(source: str) -> list[int]:
    """Lines of `source` that write a handoff's or an enrollment's status, or create one."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and (_creates_a_row(node) or _sets_status(node)):
            lines.append(node.lineno)
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
        if any(isinstance(t, ast.Attribute) and t.attr == "status" for t in targets):
            lines.append(node.lineno)  # handoff.status = …; handoff.save()
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and RAW_SQL.search(node.value)):
            lines.append(node.lineno)
    return sorted(lines)


def project_modules():
    for folder in ("service", "admin", "workers"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_status_is_written_outside_the_lifecycle():
    lifecycle_dir = ROOT / "service" / "lifecycle"
    back_doors = [f"{path.relative_to(ROOT)}:{line}"
                  for path in project_modules() if lifecycle_dir not in path.parents
                  for line in status_writes(path.read_text())]
    assert back_doors == [], "statuses change only through service.lifecycle"


def test_the_scan_sees_the_lifecycle_writes():
    writes = sum(len(status_writes(path.read_text()))
                 for path in sorted((ROOT / "service" / "lifecycle").glob("*.py")))
    assert writes >= 7, "the scan finds the writes where they belong"


@pytest.mark.parametrize("back_door", [
    'Handoff.update(status="accepted").where(Handoff.id == 1).execute()',
    'Handoff.update({Handoff.status: "withdrawn"}).execute()',
    'Enrollment.update(stop_reason="x", status=EnrollmentStatus.STOPPED).execute()',
    'Enrollment.create(lead=1, sequence="s", status="active")',
    'Handoff.create(lead=1, rep=2, promoted_by="m")',
    'Handoff.insert_many([{"lead": 1, "status": "pending"}]).execute()',
    'insert_rows(Enrollment, [{"lead": 1, "status": "active"}])',
    'handoff.status = "rejected"',
    'db.execute_sql("UPDATE handoff SET status = %s WHERE id = %s", ("accepted", 1))',
    'db.execute_sql("INSERT INTO enrollment (lead_id, status) VALUES (1, \'active\')")',
])
def test_the_scan_catches_a_back_door(back_door):
    assert status_writes(f"def sneaky():\n    {back_door}\n") == [2]


@pytest.mark.parametrize("harmless", [
    'Handoff.select().where(Handoff.status == "pending")',
    'Handoff.update(sla_met=None).where(Handoff.id == 1, Handoff.status == "pending")',
    'Enrollment.update(lead=2).where(Enrollment.lead == 1).execute()',
    'jsonify(status="ok")',
    'OutboxEmail.update(status="sent").execute()',
])
def test_the_scan_lets_reads_and_other_writes_be(harmless):
    assert status_writes(f"def fine():\n    {harmless}\n") == []
