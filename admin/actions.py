"""Panel actions: Flask-Admin's @action, each name also allowed by the page's CSP (Flask-Admin's
list template writes an inline onclick per action)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import flash
from flask_admin.actions import action as flask_admin_action

from service.core import csp
from service.core.db import utcnow
from service.core.errors import DomainError


def allow_action(name: str) -> None:
    csp.allow_handler(f"return modelActions.execute('{name}');")


def action(name: str, text: str, confirmation: str | None = None):
    allow_action(name)
    return flask_admin_action(name, text, confirmation)


def apply_each(ids, apply: Callable[[int, datetime], object], *, noun: str, done: str) -> int:
    """apply(id, now) to each selected row, flashing each refusal with its reason, then how
    many were done; returns that count."""
    count, now = 0, utcnow()
    for row_id in ids:
        try:
            apply(int(row_id), now)
            count += 1
        except DomainError as exc:
            flash(f"{noun.capitalize()} {row_id}: {exc.message}", "error")
    if count:
        flash(f"{count} {noun}(s) {done}.", "success")
    return count


allow_action("delete")  # Flask-Admin's own bulk delete on every model view
