"""The email outbox in the panel: each email's status, its text, and its HTML in a sandbox."""

from __future__ import annotations

from flask import current_app, url_for
from flask_admin import expose
from markupsafe import Markup

from service.core.models import OutboxEmail
from service.core.runtime import runtime
from service.mail import delivery

from .auth import SecuredModelView
from .preview import SANDBOX, sandboxed


def email_status(row: OutboxEmail) -> str:
    if row.sent_at:
        return f"sent {row.sent_at:%Y-%m-%d %H:%M}"
    if row.failed_at:
        return f"failed {row.failed_at:%Y-%m-%d %H:%M}"
    if row.skipped_at:
        return f"skipped: {row.skip_reason}"
    if row.retry_at:
        return f"retrying at {row.retry_at:%Y-%m-%d %H:%M}"
    return "waiting"


class OutboxView(SecuredModelView):
    creatable = editable = deletable = False
    column_list = ("created_at", "template", "to_address", "subject", "status", "attempts",
                   "last_error")
    column_filters = ("template", "to_address", "sent_at", "failed_at", "retry_at")
    column_default_sort = ("created_at", True)
    column_details_list = ("subject", "to_address", "to_name", "status", "preview", "body_text",
                           "template", "message_id", "created_at", "sent_at", "attempts",
                           "retry_at", "failed_at", "last_error")
    column_formatters = {"status": lambda v, c, m, p: email_status(m)}
    column_formatters_detail = {
        "status": lambda v, c, m, p: email_status(m),
        "body_text": lambda v, c, m, p: Markup("<pre>{}</pre>").format(m.body_text),
        "preview": lambda v, c, m, p: Markup(
            '<iframe sandbox="{}" src="{}" style="width:100%;height:600px;border:1px solid #ddd">'
            "</iframe>").format(SANDBOX, url_for(".preview_view", outbox_id=m.id)),
    }

    @expose("/preview/<int:outbox_id>")
    def preview_view(self, outbox_id: int):
        row = OutboxEmail.get_or_none(OutboxEmail.id == outbox_id)
        if row is None:
            return "No such email.", 404
        return sandboxed(delivery.preview_html(row, runtime.settings,
                                             current_app.secret_key))
