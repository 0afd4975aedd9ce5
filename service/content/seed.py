"""The first versions of the content, from config.toml (nurture.sequences,
handoff.reject_reasons) and email_templates/nurture/<name>/: written once, where no version
exists; from then on the database is the source of truth."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from service.content import store
from service.content.store import REASONS, REASONS_KEY, SEQUENCE, TEMPLATE
from service.content.templates import TEMPLATES

if TYPE_CHECKING:
    from service.core.settings import Settings


def seed_content(settings: Settings, *, now: datetime) -> None:
    """Idempotent, and safe with two processes starting at once."""
    for folder in sorted((TEMPLATES / "nurture").iterdir()):
        if (folder / "body.html").exists() and (folder / "body.txt").exists():
            store.seed_version(TEMPLATE, folder.name, {
                "html": (folder / "body.html").read_text(),
                "text": (folder / "body.txt").read_text()}, now=now)
    for name, sequence in settings.nurture.sequences.items():
        store.seed_version(SEQUENCE, name, {"steps": [
            {"id": f"s{number}", "delay_days": step["delay_days"],
             "business_days": bool(step.get("business_days")),
             "template": step["template"], "subject": step["subject"]}
            for number, step in enumerate(sequence["steps"], 1)]}, now=now)
    reasons = settings.handoff.reject_reasons
    if reasons:
        store.seed_version(REASONS, REASONS_KEY, {"reasons": [
            {"code": code, "label": reason["label"], "outcome": reason["outcome"]}
            for code, reason in reasons.items()]}, now=now)
