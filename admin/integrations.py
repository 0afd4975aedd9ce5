"""Panel views for integrations: the keys that sign webhooks and tracking calls, the form
snippets, and what intake dropped on purpose from each form."""

from __future__ import annotations

from flask import flash
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField
from wtforms.validators import DataRequired

from service.core.config import base_url
from service.core.db import utcnow
from service.core.errors import DomainError
from service.core.runtime import runtime
from service.intake import counters, keys

from .actions import action
from .auth import MARKETING, SecuredMixin, SecuredModelView


class KeyForm(FlaskForm):
    kind = SelectField("Kind", choices=[SelectChoice("webhook", "Webhook signing secret"),
                                        SelectChoice("write_key", "Tracking write key")])
    source = SelectField("Source", validators=[DataRequired()])


class IntegrationKeyView(SecuredModelView):
    roles = ("admin",)
    creatable = editable = deletable = can_view_details = False
    column_list = ("kind", "source", "hint", "active", "created_by", "created_at")
    column_default_sort = ("created_at", True)
    list_template = "admin/keys_list.html"

    @action("deactivate", "Deactivate", "Requests signed with these keys will be refused.")
    def action_deactivate(self, ids):
        flash(f"Deactivated {keys.deactivate([int(i) for i in ids])} key(s).", "success")

    @expose("/create/", methods=("GET", "POST"))
    def new_view(self):
        settings = runtime.settings
        form = KeyForm()
        sources = sorted(set(settings.webhooks.sources) | set(settings.tracking.sources))
        form.source.choices = [SelectChoice(name, name) for name in sources]
        if form.validate_on_submit():
            allowed = (list(settings.webhooks.sources) if form.kind.data == "webhook"
                       else settings.tracking.sources)
            try:
                row, secret = keys.create_key(form.kind.data, form.source.data, sources=allowed,
                                              actor=current_user.email, now=utcnow())
            except DomainError as exc:
                form.source.errors = [exc.message]
            else:
                return self.render("admin/key_created.html", key=row, secret=secret)
        return self.render("admin/key_new.html", form=form)


class FormsView(SecuredMixin, BaseView):
    roles = MARKETING

    @expose("/")
    def index(self):
        """The snippets, and per form what intake dropped (honeypot hits, rate-limited posts)."""
        settings = runtime.settings
        sources = [f"form:{slug}" for slug in settings.forms]
        return self.render("admin/forms.html", forms=settings.forms,
                           root=base_url(settings), dropped=counters.recent(utcnow(), sources),
                           rate=settings.intake.form_rate_per_minute)
