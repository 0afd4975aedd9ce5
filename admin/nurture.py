"""Panel views for nurture and deliverability: enrollments, re-engaged leads, the
suppression list, and each step's counts (the sequences themselves: admin/content.py)."""

from __future__ import annotations

from flask import flash, redirect, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from peewee import fn
from wtforms import EmailField, SelectField
from wtforms.validators import DataRequired

from service import lifecycle
from service.content.sequences import sequence_names
from service.core.addresses import normalise_email
from service.core.db import utcnow
from service.core.errors import DomainError
from service.core.models import EmailClick, Enrollment, Lead, OutboxEmail
from service.core.runtime import runtime
from service.nurture import sequences as nurture
from service.nurture.suppression import suppress

from .actions import action
from .auth import MARKETING, SecuredMixin, SecuredModelView
from .lists import SavedViewsMixin, enrollment_filters


def step_counts(sequence: str) -> dict[str, dict[str, int]]:
    """Per step id (a step keeps it through every version): emails sent, clicks, and
    unsubscribes right after it."""
    counts: dict[str, dict[str, int]] = {}
    sent = (OutboxEmail.select(OutboxEmail.step_id, fn.COUNT(OutboxEmail.id))
            .join(Enrollment, on=(OutboxEmail.enrollment == Enrollment.id))
            .where(Enrollment.sequence == sequence, OutboxEmail.sent_at.is_null(False))
            .group_by(OutboxEmail.step_id).tuples())
    clicks = (EmailClick.select(OutboxEmail.step_id, fn.COUNT(EmailClick.id))
              .join(OutboxEmail, on=(EmailClick.outbox == OutboxEmail.id))
              .join(Enrollment, on=(OutboxEmail.enrollment == Enrollment.id))
              .where(Enrollment.sequence == sequence).group_by(OutboxEmail.step_id).tuples())
    unsubscribed = (Enrollment.select(Enrollment.last_step_id, fn.COUNT(Enrollment.id))
                    .where(Enrollment.sequence == sequence,
                           Enrollment.stop_reason == "unsubscribe")
                    .group_by(Enrollment.last_step_id).tuples())
    for key, rows in (("sent", sent), ("clicked", clicks), ("unsubscribed", unsubscribed)):
        for step, number in rows:
            counts.setdefault(step, {"sent": 0, "clicked": 0, "unsubscribed": 0})[key] = number
    return counts


class EnrollForm(FlaskForm):
    sequence = SelectField("Sequence", validators=[DataRequired()])


class EnrollmentView(SavedViewsMixin, SecuredModelView):
    creatable = editable = deletable = False
    edit_roles = MARKETING
    list_template = "admin/workspace_list.html"
    column_list = ("lead", "sequence", "step", "status", "next_due_at", "stop_reason",
                   "started_at")
    column_labels = {"next_due_at": "Next due"}
    list_related = ("lead",)
    column_filters = (*enrollment_filters(Enrollment), "sequence", "status", "stop_reason",
                      "next_due_at")
    column_default_sort = ("started_at", True)

    @action("stop", "Stop", "Stop the selected enrollments?")
    def action_stop(self, ids):
        now = utcnow()
        leads = [e.lead_id for e in Enrollment.select().where(Enrollment.id.in_(ids))]
        stopped = sum(lifecycle.stop_enrollments(lead_id, reason="stopped by hand", now=now,
                                                 actor=current_user.email)
                      for lead_id in leads)
        flash(f"{stopped} enrollment(s) stopped.", "success")


def enroll_view(view, ids: list[int]):
    """Shared by the leads list: enroll the selected leads in a sequence."""
    settings = runtime.settings
    form = EnrollForm()
    form.sequence.choices = sequence_names()
    if form.validate_on_submit():
        done, now = 0, utcnow()
        for lead_id in ids:
            try:
                nurture.enroll(lead_id, form.sequence.data, settings=settings, now=now,
                               actor=current_user.email)
                done += 1
            except DomainError as exc:
                flash(f"Lead {lead_id}: {exc.message}", "error")
        flash(f"{done} lead(s) enrolled in {form.sequence.data}.", "success")
        return redirect(url_for(".index_view"))
    leads = Lead.select().where(Lead.id.in_(ids))
    return view.render("admin/enroll.html", form=form, leads=leads, ids=ids)


class ReengagedView(SecuredMixin, BaseView):
    @expose("/")
    def index(self):
        leads = (Lead.select().where(Lead.re_engaged_at.is_null(False),
                                     Lead.stage == "nurture")
                 .order_by(Lead.re_engaged_at.desc()).limit(500))
        return self.render("admin/reengaged.html", leads=leads)


class SuppressForm(FlaskForm):
    email = EmailField("Address", validators=[DataRequired()])


class SuppressionView(SecuredModelView):
    roles = MARKETING
    creatable = editable = deletable = False
    column_list = ("email", "reason", "source", "at", "email_hash")
    column_labels = {"email": "Address (blank once erased)"}
    column_searchable_list = ("email",)
    column_filters = ("reason", "source", "at")
    column_default_sort = ("at", True)
    list_template = "admin/suppression_list.html"

    @expose("/add/", methods=("GET", "POST"))
    def add_view(self):
        form = SuppressForm()

        def submit() -> str:
            email = normalise_email(form.email.data)
            suppress(email, reason="manual", source=current_user.email, now=utcnow())
            return f"{email} will get no prospect mail."
        return self.form_page(form, "admin/suppress_add.html", submit, "email")
