"""Reject reasons as content: the reasons a rep chooses from, each with its outcome
("nurture:<sequence>" or "disqualify"). One document, versioned as a whole."""

from __future__ import annotations

import re
from datetime import datetime

from service.content import store
from service.content.store import REASONS, REASONS_KEY, SEQUENCE
from service.core.errors import InvalidInput
from service.core.models import ContentVersion

CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def reject_reasons() -> dict[str, dict]:
    """The current reasons in their order: code → {"label", "outcome"}."""
    row = store.current(REASONS, REASONS_KEY)
    return {r["code"]: {"label": r["label"], "outcome": r["outcome"]}
            for r in (row.data["reasons"] if row else [])}


def reason_labels() -> dict[str, str]:
    """Every code ever offered → its latest label: a handoff rejected for a reason since
    removed still reads as it did."""
    labels: dict[str, str] = {}
    for row in reversed(store.history(REASONS, REASONS_KEY)):
        labels.update({r["code"]: r["label"] for r in row.data["reasons"]})
    return labels


def reason_label(code: str) -> str:
    return reason_labels().get(code, code)


def save_reasons(reasons: list[dict], *, author: str, now: datetime,
                 note: str = "", based_on: int | None = None) -> ContentVersion:
    """A new version of the reasons: [{"code", "label", "outcome"}, …] in the order shown."""
    return store.add_version(REASONS, REASONS_KEY, {"reasons": check_reasons(reasons)},
                             author=author, now=now, note=note, describe=describe,
                             based_on=based_on)


def check_reasons(reasons: list[dict]) -> list[dict]:
    if not reasons:
        raise InvalidInput("reps need at least one reason to choose from")
    sequences, seen, clean = set(store.current_all(SEQUENCE)), set(), []
    for number, reason in enumerate(reasons, 1):
        code = str(reason.get("code") or "").strip()
        label = " ".join(str(reason.get("label") or "").split())
        outcome = str(reason.get("outcome") or "").strip()
        if not CODE.fullmatch(code):
            raise InvalidInput(f"reason {number}: a code is 1 to 40 lowercase letters, digits, "
                               "- or _")
        if code in seen:
            raise InvalidInput(f"reason {number}: the code {code!r} is used twice")
        if not label or len(label) > 120:
            raise InvalidInput(f"reason {number} ({code}) needs a label of at most 120 "
                               "characters")
        if outcome != "disqualify" and not (outcome.startswith("nurture:")
                                            and outcome[8:] in sequences):
            raise InvalidInput(f"reason {number} ({code}): the outcome is 'disqualify' or "
                               f"'nurture:<sequence>' naming one of "
                               f"{', '.join(sorted(sequences)) or 'no sequence yet'}")
        seen.add(code)
        clean.append({"code": code, "label": label, "outcome": outcome})
    return clean


def describe(old: dict | None, new: dict) -> str:
    if old is None:
        return f"created with {len(new['reasons'])} reason(s)"
    before = {r["code"]: r for r in old["reasons"]}
    after = {r["code"]: r for r in new["reasons"]}
    said = [f"added {code}" for code in after if code not in before]
    said += [f"removed {code}" for code in before if code not in after]
    for code in after.keys() & before.keys():
        for field in ("label", "outcome"):
            if after[code][field] != before[code][field]:
                said.append(f"{code}: {field} changed")
    if not said and list(after) != list(before):
        said.append("order changed")
    return "; ".join(said)
