"""Panel actions: Flask-Admin's @action, each name also allowed by the page's CSP (Flask-Admin's
list template writes an inline onclick per action)."""

from __future__ import annotations

from flask_admin.actions import action as flask_admin_action

from service.core import csp


def allow_action(name: str) -> None:
    csp.allow_handler(f"return modelActions.execute('{name}');")


def action(name: str, text: str, confirmation: str | None = None):
    allow_action(name)
    return flask_admin_action(name, text, confirmation)


allow_action("delete")  # Flask-Admin's own bulk delete on every model view
