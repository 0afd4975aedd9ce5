"""Prospect email templates as content: an HTML and a text body, rendered in the sandbox."""

from __future__ import annotations

import difflib
import re
from datetime import datetime

from service.content import store, templates
from service.content.store import TEMPLATE
from service.core import outbox
from service.core.db import transaction
from service.core.errors import InvalidInput, NotFound
from service.core.models import ContentVersion, OutboxEmail

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def current_template(name: str) -> ContentVersion | None:
    """Its current version; data is {"html": …, "text": …}."""
    return store.current(TEMPLATE, name)


def template_versions() -> dict[str, int]:
    """Each template's current version number, by name (one query)."""
    return {name: row.version for name, row in store.current_all(TEMPLATE).items()}


def save_template(name: str, *, html: str, text: str, author: str, now: datetime,
                  note: str = "", based_on: int | None = None) -> ContentVersion:
    """A new version, once both bodies pass templates.check_template (else InvalidInput with
    the part, the line and the reason; the current version stays)."""
    if not NAME.fullmatch(name or ""):
        raise InvalidInput("a template name is 1 to 40 lowercase letters, digits, - or _")
    html, text = _lines(html), _lines(text)
    templates.check_template(html, text)
    return store.add_version(TEMPLATE, name, {"html": html, "text": text}, author=author,
                             now=now, note=note, describe=describe, based_on=based_on)


def render(name: str, version: int, context: dict, *, stored: dict | None = None
           ) -> tuple[str, str, str]:
    """(subject, text, html) of that version of the template (its bodies `stored`, when the
    caller has read them with stored_versions()). The subject is context["subject"], itself
    a template, rendered first: the bodies' {{ subject }} is the text the recipient reads.
    A test send (context["sample_lead"]) is rendered for the sample lead, every field
    filled."""
    if stored is None:
        row = store.version(TEMPLATE, name, version)
        if row is None:
            raise NotFound(f"no version {version} of the email template {name!r}")
        stored = row.data
    if context.get("sample_lead"):
        context = {**context, "lead": templates.SAMPLE_LEAD}
    subject = templates.render_subject(context["subject"], context)
    context = {**context, "subject": subject}
    return (subject, templates.render_part("text", stored["text"], context),
            templates.render_part("html", stored["html"], context))


def stored_versions(wanted: set[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    """The bodies of these (name, version)s of templates, in one query: what a batch of
    emails renders. A version that does not exist is left out."""
    if not wanted:
        return {}
    rows = ContentVersion.select(ContentVersion.key, ContentVersion.version,
                                 ContentVersion.data).where(
        ContentVersion.kind == TEMPLATE,
        ContentVersion.key.in_(sorted({name for name, _ in wanted})),
        ContentVersion.version.in_(sorted({number for _, number in wanted})))
    return {(row.key, row.version): row.data for row in rows
            if (row.key, row.version) in wanted}


def send_test(name: str, *, version: int, subject: str, to_address: str,
              now: datetime) -> OutboxEmail:
    """Queue that version to a colleague's own address, through the outbox, as prospect mail
    rendered for the sample lead (templates.SAMPLE_LEAD: Sam Sample of Sample Co)."""
    if store.version(TEMPLATE, name, version) is None:
        raise NotFound(f"no version {version} of the email template {name!r}")
    with transaction():
        return outbox.queue_email(f"nurture/{name}", to_address=to_address, now=now,
                                  to_prospect=True,
                                  context={"subject": subject, "template_version": version,
                                           "sample_lead": True})


def describe(old: dict | None, new: dict) -> str:
    if old is None:
        return "created"
    said = []
    for part in ("html", "text"):
        diff = list(difflib.unified_diff(old[part].splitlines(), new[part].splitlines(),
                                         lineterm="", n=0))
        added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
        if added or removed:
            said.append(f"{part}: {added} line(s) added, {removed} removed")
    return "; ".join(said)


def _lines(source: str) -> str:
    """Line ends as \\n (a browser sends \\r\\n)."""
    return (source or "").replace("\r\n", "\n").replace("\r", "\n")
