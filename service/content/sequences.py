"""Nurture sequences as content: ordered steps, each a delay, a template and a subject, and
an id that the step keeps through every later version (assigned when it is first saved; a
seed's steps are s1, s2, …, as are those of a version saved before steps had ids). An
enrollment remembers the id of the last step it sent, so an edit never makes a lead receive
a step again or skip one (service.nurture.sequences.next_step)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from service.content import store, templates
from service.content.store import SEQUENCE, TEMPLATE
from service.core.errors import InvalidInput
from service.core.models import ContentVersion

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
STEP_ID = re.compile(r"[a-z0-9]{1,16}")
FIELDS = ("delay_days", "business_days", "template", "subject")


def current_sequence(name: str) -> ContentVersion | None:
    """Its current version; data is {"steps": [{id, delay_days, business_days, template,
    subject}, …]} (read the steps through steps_of: old versions may lack the ids)."""
    return store.current(SEQUENCE, name)


def steps_of(row: ContentVersion) -> list[dict]:
    """The version's steps, each with its id (by position where the version has none)."""
    return [{**step, "id": step.get("id") or f"s{number}"}
            for number, step in enumerate(row.data["steps"], 1)]


def followers(name: str, step_id: str) -> list[str]:
    """The ids of the steps that came after step_id in the newest version holding it: where a
    lead goes on when the step it last received has been removed since."""
    for row in store.history(SEQUENCE, name):
        ids = [step["id"] for step in steps_of(row)]
        if step_id in ids:
            return ids[ids.index(step_id) + 1:]
    return []


def current_sequences() -> dict[str, ContentVersion]:
    return store.current_all(SEQUENCE)


def sequence_names() -> list[str]:
    return sorted(current_sequences())


def save_sequence(name: str, steps: list[dict], *, author: str, now: datetime,
                  note: str = "", based_on: int | None = None) -> ContentVersion:
    """A new version of the sequence (a new sequence when the name is new), its steps
    checked first: InvalidInput names the step and what is wrong."""
    if not NAME.fullmatch(name or ""):
        raise InvalidInput("a sequence name is 1 to 40 lowercase letters, digits, - or _")
    return store.add_version(SEQUENCE, name, {"steps": check_steps(steps)}, author=author,
                             now=now, note=note, describe=describe, based_on=based_on)


def check_steps(steps: list[dict]) -> list[dict]:
    """The steps as stored; refuses a step without a subject, a negative delay, a template
    that does not exist, a subject that would not render."""
    if not steps:
        raise InvalidInput("a sequence needs at least one step")
    known = set(store.current_all(TEMPLATE))
    clean, ids = [], set()
    for number, step in enumerate(steps, 1):
        where = f"step {number}"
        delay = step.get("delay_days")
        if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 3650:
            raise InvalidInput(f"{where}: the delay is a whole number of days, 0 to 3650")
        if step.get("template") not in known:
            raise InvalidInput(f"{where}: no email template named {step.get('template')!r} "
                               f"(there are {', '.join(sorted(known)) or 'none'})")
        subject = str(step.get("subject") or "").strip()
        if not subject:
            raise InvalidInput(f"{where} needs a subject")
        templates.check_subject(subject, f"{where} subject")
        step_id = str(step.get("id") or "")
        if not STEP_ID.fullmatch(step_id) or step_id in ids:
            step_id = new_step_id()  # a new step (or a copy of one): its own id
        ids.add(step_id)
        clean.append({"id": step_id, "delay_days": delay,
                      "business_days": bool(step.get("business_days")),
                      "template": step["template"], "subject": subject})
    return clean


def new_step_id() -> str:
    return secrets.token_hex(5)


def describe(old: dict | None, new: dict) -> str:
    """What changed, step by step, in words."""
    if old is None:
        return f"created with {len(new['steps'])} step(s)"
    before, after, said = old["steps"], new["steps"], []
    for number, (a, b) in enumerate(zip(before, after, strict=False), 1):
        changed = [field.replace("_", " ") for field in FIELDS if a.get(field) != b.get(field)]
        if changed:
            said.append(f"step {number}: {', '.join(changed)} changed")
    if len(after) > len(before):
        said.append(f"step(s) {len(before) + 1}–{len(after)} added")
    if len(after) < len(before):
        said.append(f"step(s) {len(after) + 1}–{len(before)} removed")
    return "; ".join(said)
