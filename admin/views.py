"""Panel views. Stages are never form fields: they change only through lifecycle actions."""

from __future__ import annotations

from flask import current_app, flash, make_response, redirect, request, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import SelectChoice, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from service import emails
from service.db import utcnow
from service.errors import DomainError
from service.handoffs import promote_lead
from service.models import Definition, Lead, OutboxEmail, Rep

from .auth import SecuredModelView

SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
PREVIEW_CSP = (f"sandbox {SANDBOX}; default-src 'none'; style-src 'unsafe-inline'; "
               "img-src data: https:")


class PromoteForm(FlaskForm):
    rep = SelectField("Rep", coerce=int, validators=[DataRequired("Choose a rep.")])
    note = TextAreaField("Note for the rep", validators=[Length(max=5000)])


class LeadView(SecuredModelView):
    can_create = False
    can_delete = False
    column_list = ("email", "first_name", "last_name", "company", "country", "stage",
                   "source", "created_at")
    column_searchable_list = ("email", "company", "last_name")
    column_filters = ("stage", "source", "country", "created_at")
    column_default_sort = ("created_at", True)
    form_columns = Lead.EDITABLE

    def __init__(self, **kwargs):
        super().__init__(Lead, **kwargs)

    @action("promote", "Promote to MQL")
    def action_promote(self, ids):
        return redirect(url_for(".promote_view", ids=",".join(ids)))

    @expose("/promote/", methods=("GET", "POST"))
    def promote_view(self):
        ids = [int(i) for i in request.values.get("ids", "").split(",") if i.isdigit()]
        form = PromoteForm()
        form.rep.choices = [SelectChoice(r.id, str(r)) for r in
                            Rep.select().where(Rep.active == True).order_by(Rep.name)]  # noqa: E712
        if ids and form.validate_on_submit():
            self._promote(ids, form.rep.data, form.note.data or "")
            return redirect(url_for(".index_view"))
        leads = Lead.select().where(Lead.id.in_(ids)) if ids else []
        return self.render("admin/promote.html", form=form, leads=leads, ids=ids,
                           definition=Definition.current("mql"))

    def _promote(self, ids: list[int], rep_id: int, note: str) -> None:
        settings, now, done = current_app.config["SETTINGS"], utcnow(), 0
        for lead_id in ids:
            try:
                promote_lead(lead_id, rep_id=rep_id, note=note, actor=current_user.email,
                             settings=settings, now=now)
                done += 1
            except DomainError as exc:
                flash(f"Lead {lead_id}: {exc.message}", "error")
        if done:
            flash(f"Promoted {done} lead(s) to MQL; the rep has been emailed.", "success")


class RepView(SecuredModelView):
    column_list = ("email", "name", "team", "manager_email", "time_zone", "weight", "capacity",
                   "active", "out_of_office")
    column_searchable_list = ("email", "name")
    form_columns = column_list


class TeamView(SecuredModelView):
    column_list = form_columns = ("name", "manager_email")


class OutboxView(SecuredModelView):
    can_create = can_edit = can_delete = False
    column_list = ("created_at", "template", "to_address", "subject", "sent_at", "attempts",
                   "last_error")
    column_filters = ("template", "to_address", "sent_at")
    column_default_sort = ("created_at", True)
    column_details_list = ("subject", "to_address", "to_name", "preview", "body_text",
                           "template", "message_id", "created_at", "sent_at", "attempts",
                           "last_error")
    column_formatters_detail = {
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
        html = row.body_html
        if not row.sent_at:
            settings = current_app.config["SETTINGS"]
            html = emails.compose(row, settings, current_app.secret_key)[3]
        # links open in a new tab, outside the sandbox
        response = make_response(html.replace("<head>", '<head><base target="_blank">', 1))
        response.headers["Content-Security-Policy"] = PREVIEW_CSP
        return response
