"""Nurture sequences as content: ordered steps, each a delay, a template and a subject."""

from __future__ import annotations

import re
from datetime import datetime

from service.content import store, templates
from service.content.store import SEQUENCE, TEMPLATE
from service.core.errors import InvalidInput
from service.core.models import ContentVersion

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
FIELDS = ("delay_days", "business_days", "template", "subject")


def current_sequence(name: str) -> ContentVersion | None:
    """Its current version; data is {"steps": [{delay_days, business_days, template,
    subject}, …]}."""
    return store.current(SEQUENCE, name)


def current_sequences() -> dict[str, ContentVersion]:
    return store.current_all(SEQUENCE)


def sequence_names() -> list[str]:
    return sorted(current_sequences())


def save_sequence(name: str, steps: list[dict], *, author: str, now: datetime,
                  note: str = "") -> ContentVersion:
    """A new version of the sequence (a new sequence when the name is new), its steps
    checked first: InvalidInput names the step and what is wrong."""
    if not NAME.fullmatch(name or ""):
        raise InvalidInput("a sequence name is 1 to 40 lowercase letters, digits, - or _")
    return store.add_version(SEQUENCE, name, {"steps": check_steps(steps)}, author=author,
                             now=now, note=note, describe=describe)


def check_steps(steps: list[dict]) -> list[dict]:
    """The steps as stored; refuses a step without a subject, a negative delay, a template
    that does not exist, a subject that would not render."""
    if not steps:
        raise InvalidInput("a sequence needs at least one step")
    known = set(store.current_all(TEMPLATE))
    clean = []
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
        clean.append({"delay_days": delay, "business_days": bool(step.get("business_days")),
                      "template": step["template"], "subject": subject})
    return clean


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
