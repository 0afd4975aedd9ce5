"""Content the team edits in the panel: nurture sequences, prospect email templates and the
reject reasons. Marketing edits; everyone may read. Each page shows the history (who, when,
what changed; any old version), a preview as the recipient sees it, and a test to oneself."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from peewee import fn
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectField,
    StringField,
    TextAreaField,
)

from service.content import emails as content_emails
from service.content import reasons as content_reasons
from service.content import sequences as content_sequences
from service.content import store, templates
from service.core.db import utcnow
from service.core.errors import DomainError
from service.core.models import Enrollment, Lead
from service.core.runtime import runtime
from service.lifecycle import EnrollmentStatus

from .auth import EVERYONE, MARKETING, SecuredMixin
from .nurture import step_counts
from .preview import SANDBOX, sandboxed


class StepForm(Form):
    step_id = HiddenField()  # kept through every version: a new row has none yet
    delay_days = StringField("Days after the previous step")
    business_days = BooleanField("Business days")
    template = SelectField("Template", validate_choice=False)
    subject = StringField("Subject")
    remove = BooleanField("Remove")


class SequenceForm(FlaskForm):
    name = StringField("Sequence name")
    steps = FieldList(FormField(StepForm))
    note = StringField("What changed and why (optional)")
    base_version = HiddenField()


class TemplateForm(FlaskForm):
    name = StringField("Template name")
    html = TextAreaField("HTML body")
    text = TextAreaField("Text body")
    note = StringField("What changed and why (optional)")
    base_version = HiddenField()


class ReasonForm(Form):
    code = StringField("Code")
    label = StringField("Label the rep sees")
    outcome = SelectField("Outcome", validate_choice=False)
    remove = BooleanField("Remove")


class ReasonsForm(FlaskForm):
    reasons = FieldList(FormField(ReasonForm))
    note = StringField("What changed and why (optional)")
    base_version = HiddenField()


class TestForm(FlaskForm):
    """Only its CSRF token: "Send a test to me"."""


def chosen_lead() -> Lead | None:
    """The lead a preview is rendered for (?lead=<id>), else the sample."""
    value = request.args.get("lead", "")
    return Lead.get_or_none(Lead.id == int(value)) if value.isdigit() and len(value) < 10 \
        else None


def preview_context(subject: str) -> dict:
    settings = runtime.settings
    return templates.sample_context(chosen_lead(), sender=settings.mail.from_name,
                                    postal_address=settings.mail.postal_address,
                                    subject=subject)


def preview_response(name: str, version: int, subject: str):
    """The email as the recipient sees it: HTML in a sandbox, or the text (?part=text)."""
    try:
        subject, text, html = content_emails.render(name, version, preview_context(subject))
    except DomainError:
        abort(404)
    except Exception as exc:  # a version stored before today's checks: say why, no 500
        return sandboxed(str(Markup("<p>This email cannot be shown: {}: {}</p>").format(
            type(exc).__name__, str(exc)[:300]))), 422
    if request.args.get("part") == "text":
        return f"Subject: {subject}\n\n{text}", 200, {"Content-Type": "text/plain; charset=utf-8"}
    return sandboxed(html)


def send_test(name: str, version: int, subject: str) -> None:
    content_emails.send_test(name, version=version, subject=subject,
                             to_address=current_user.email, now=utcnow())
    flash(f"A test is on its way to {current_user.email}.", "success")


class ContentView(SecuredMixin, BaseView):
    """Read by everyone; changed (each POST) by marketing only."""
    roles = EVERYONE
    edit_roles = MARKETING

    def render(self, template, **kwargs):
        return super().render(template, may_edit=current_user.role in self.edit_roles,
                              sandbox=SANDBOX, **kwargs)

    def history_page(self, kind: str, key: str, title: str):
        versions = store.history(kind, key)
        if not versions:
            abort(404)
        return self.render("admin/content_history.html", title=title, versions=versions,
                           key=key)

    def version_page(self, kind: str, key: str, number: int, template: str, **extra):
        row = store.version(kind, key, number)
        if row is None:
            abort(404)
        return self.render(template, row=row, **extra)

    def saved(self, form, save, error_field, endpoint: str, **values):
        """Run save(based_on) on a valid POST, based_on the version the form was opened with;
        a refusal stays on the form with its reason and the user's text. When another
        version was saved meanwhile, the form is now based on it: saving again replaces it."""
        self.require(self.edit_roles)
        if form.validate_on_submit():
            try:
                made = save(base_version(form))
            except store.VersionMoved as exc:
                form.base_version.data = str(exc.latest.version)
                form.base_version.raw_data = [form.base_version.data]
                error_field.errors = [*error_field.errors, exc.message]
                return None
            except DomainError as exc:
                error_field.errors = [*error_field.errors, exc.message]
                return None
            flash(f"Version {made.version} saved: it takes effect now.", "success")
            return redirect(url_for(endpoint, **values))
        return None


def opened(form_class, data: dict):
    """The form as opened (the current version's data), or as posted: only what was sent,
    never the current version's data filling what was not."""
    return form_class(data=data) if request.method == "GET" else form_class()


def base_version(form) -> int:
    """The version the form was opened with (0: a new one), as posted; -1 when the form
    lacks it."""
    value = (form.base_version.raw_data or [""])[0].strip()
    return int(value) if value.isdigit() and len(value) < 10 else -1


class SequencesView(ContentView):
    @expose("/")
    def index(self):
        sequences = {name: (row.data["steps"], row, step_counts(name))
                     for name, row in content_sequences.current_sequences().items()}
        active = dict(Enrollment.select(Enrollment.sequence, fn.COUNT(Enrollment.id))
                      .where(Enrollment.status == EnrollmentStatus.ACTIVE)
                      .group_by(Enrollment.sequence).tuples())
        return self.render("admin/sequences.html", sequences=sequences, active=active)

    @expose("/edit/", methods=("GET", "POST"))
    @expose("/edit/<key>", methods=("GET", "POST"))
    def edit(self, key: str = ""):
        name = key
        self.require(self.edit_roles)
        current = content_sequences.current_sequence(name) if name else None
        if name and current is None:
            abort(404)
        steps = [{**step, "step_id": step["id"]}
                 for step in (content_sequences.steps_of(current) if current else [])]
        form = opened(SequenceForm, {"name": name, "steps": [*steps, {"delay_days": ""}],
                                     "base_version": current.version if current else 0})
        choices = sorted(content_emails.template_versions())
        for entry in form.steps:
            entry.form.template.choices = choices
        if request.method == "POST":
            key = name or (form.name.data or "").strip()
            done = self.saved(form, lambda based_on: content_sequences.save_sequence(
                key, steps_from(form), author=current_user.email, now=utcnow(),
                note=form.note.data or "", based_on=based_on), form.name, ".history",
                key=key or "-")
            if done:
                return done
        return self.render("admin/sequence_edit.html", form=form, name=name, current=current)

    @expose("/history/<key>")
    def history(self, key: str):
        name = key
        return self.history_page(store.SEQUENCE, name, f"Sequence {name}")

    @expose("/version/<key>/<int:number>")
    def version(self, key: str, number: int):
        return self.version_page(store.SEQUENCE, key, number, "admin/sequence_version.html")

    @expose("/preview/<sequence>/<int:index>")
    def preview(self, sequence: str, index: int):
        """The step of the current version (or ?version=N of the sequence)."""
        number = request.args.get("version", "")
        row = (store.version(store.SEQUENCE, sequence, int(number))
               if number.isdigit() and len(number) < 10
               else content_sequences.current_sequence(sequence))
        if row is None or not 0 <= index < len(row.data["steps"]):
            return "No such step.", 404
        step = row.data["steps"][index]
        template = content_emails.current_template(step["template"])
        return preview_response(step["template"], template.version, step["subject"])

    @expose("/test/<sequence>/<int:index>", methods=("POST",))
    def test(self, sequence: str, index: int):
        self.require(self.edit_roles)
        row = content_sequences.current_sequence(sequence)
        if row is None or not 0 <= index < len(row.data["steps"]):
            abort(404)
        if TestForm().validate_on_submit():
            step = row.data["steps"][index]
            send_test(step["template"],
                      content_emails.current_template(step["template"]).version,
                      step["subject"])
        return redirect(url_for(".index"))


def steps_from(form: SequenceForm) -> list[dict]:
    """The steps kept: a row marked Remove, or the blank row left blank, is dropped."""
    steps = []
    for entry in form.steps:
        step = entry.form
        if step.remove.data or not (step.subject.data or "").strip():
            continue
        delay = (step.delay_days.data or "").strip()
        steps.append({"id": step.step_id.data or "",
                      "delay_days": int(delay) if delay.isdigit() and len(delay) < 6
                      else delay, "business_days": bool(step.business_days.data),
                      "template": step.template.data, "subject": step.subject.data})
    return steps


class EmailTemplatesView(ContentView):
    @expose("/")
    def index(self):
        return self.render("admin/email_templates.html",
                           rows=store.current_all(store.TEMPLATE).values())

    @expose("/edit/", methods=("GET", "POST"))
    @expose("/edit/<key>", methods=("GET", "POST"))
    def edit(self, key: str = ""):
        name = key
        self.require(self.edit_roles)
        current = content_emails.current_template(name) if name else None
        if name and current is None:
            abort(404)
        form = opened(TemplateForm, {**current.data, "base_version": current.version}
                      if current else {"base_version": 0,
            "html": '{% extends "nurture/base.html" %}\n{% block content %}\n'
                    '<p>Hi {{ lead.first_name or "there" }},</p>\n{% endblock %}\n',
            "text": '{% extends "nurture/base.txt" %}\n{% block content %}\n'
                    'Hi {{ lead.first_name or "there" }},\n{% endblock %}\n'})
        new_name = name or (form.name.data or "").strip()
        if request.method == "POST":
            done = self.saved(form, lambda based_on: content_emails.save_template(
                new_name, html=form.html.data, text=form.text.data, author=current_user.email,
                now=utcnow(), note=form.note.data or "", based_on=based_on), form.html,
                ".history", key=new_name or "-")
            if done:
                return done
        return self.render("admin/email_template_edit.html", form=form, name=name,
                           current=current, test_form=TestForm())

    @expose("/history/<key>")
    def history(self, key: str):
        name = key
        return self.history_page(store.TEMPLATE, name, f"Email template {name}")

    @expose("/version/<key>/<int:number>")
    def version(self, key: str, number: int):
        return self.version_page(store.TEMPLATE, key, number, "admin/email_template_version.html")

    @expose("/preview/<key>/<int:number>")
    def preview(self, key: str, number: int):
        name = key
        return preview_response(name, number, "A subject as the step sets it")

    @expose("/test/<key>/<int:number>", methods=("POST",))
    def test(self, key: str, number: int):
        name = key
        self.require(self.edit_roles)
        if store.version(store.TEMPLATE, name, number) is None:
            abort(404)
        if TestForm().validate_on_submit():
            send_test(name, number, f"Test: {name} v{number}")
        return redirect(url_for(".edit", key=name))


class ReasonsView(ContentView):
    @expose("/", methods=("GET", "POST"))
    def index(self):
        reasons = [{"code": code, **reason}
                   for code, reason in content_reasons.reject_reasons().items()]
        row = store.current(store.REASONS, store.REASONS_KEY)
        form = opened(ReasonsForm, {"reasons": [*reasons, {"code": ""}],
                                    "base_version": row.version if row else 0})
        outcomes = [("disqualify", "disqualify")] + [
            (f"nurture:{name}", f"nurture:{name}")
            for name in content_sequences.sequence_names()]
        for entry in form.reasons:
            entry.form.outcome.choices = outcomes
        if request.method == "POST":
            done = self.saved(form, lambda based_on: content_reasons.save_reasons(
                [{"code": e.form.code.data, "label": e.form.label.data,
                  "outcome": e.form.outcome.data} for e in form.reasons
                 if not e.form.remove.data and (e.form.code.data or "").strip()],
                author=current_user.email, now=utcnow(), note=form.note.data or "",
                based_on=based_on), form.note, ".index")
            if done:
                return done
        return self.render("admin/reject_reasons.html", form=form,
                           versions=store.history(store.REASONS, store.REASONS_KEY)[:5])

    @expose("/history/")
    def history(self):
        return self.history_page(store.REASONS, store.REASONS_KEY, "Reject reasons")

    @expose("/version/<key>/<int:number>")
    def version(self, key: str, number: int):
        return self.version_page(store.REASONS, key, number,
                                 "admin/reject_reasons_version.html",
                                 labels=content_reasons.reason_labels())
