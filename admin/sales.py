"""Panel views for sales managers: handoffs with their SLA clock, reassign and withdraw,
outbound SQLs, definitions and the audit log. Every change goes through service.lifecycle."""

from __future__ import annotations

from datetime import datetime

from flask import flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import EmailField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from service import lifecycle
from service.core.addresses import normalise_email
from service.core.db import utcnow
from service.core.errors import DomainError
from service.core.models import Definition, Handoff, InboundEmail, Rep
from service.core.runtime import runtime
from service.handoffs import thread
from service.handoffs.actions import reassign
from service.handoffs.labels import LABELS
from service.intake.event import lead_fields
from service.leads.definitions import add_definition

from .actions import action
from .auth import MANAGERS, SecuredMixin, SecuredModelView
from .lists import HANDOFF_FILTERS, SavedViewsMixin


def rep_choices() -> list[SelectChoice]:
    reps = Rep.select().where(Rep.active == True).order_by(Rep.name)  # noqa: E712
    return [SelectChoice(str(rep.id), str(rep)) for rep in reps]


def bant_field(name: str) -> SelectField:
    return SelectField(name.capitalize(), validators=[DataRequired()],
                       choices=[SelectChoice(v, LABELS[v]) for v in lifecycle.BANT[name]])


def time_left(due_at: datetime, now: datetime) -> str:
    seconds = int((due_at - now).total_seconds())
    hours, minutes = divmod(abs(seconds) // 60, 60)
    span = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return f"{span} left" if seconds >= 0 else f"overdue by {span}"


def sla_cell(view, context, handoff, name):
    if handoff.status != lifecycle.HandoffStatus.PENDING:
        met = {True: "met", False: "missed", None: "—"}[handoff.sla_met]
        return f"{handoff.status} · SLA {met}"
    text = time_left(handoff.due_at, utcnow())
    css = "text-danger font-weight-bold" if text.startswith("overdue") else ""
    return Markup('<span class="{}">{}</span>').format(css, text)


class ReassignForm(FlaskForm):
    rep = SelectField("New rep", validators=[DataRequired("Choose a rep.")])


class WithdrawForm(FlaskForm):
    reason = TextAreaField("Why", validators=[Length(max=2000)])


class AnswerForm(FlaskForm):
    text = TextAreaField("Answer")


def conversation(lead_id: int) -> dict:
    """The thread of the lead's handoffs, oldest first, and the emails received about the
    lead, newest first."""
    handoffs = [h.id for h in Handoff.select(Handoff.id).where(Handoff.lead == lead_id)]
    received = (InboundEmail.select().where(InboundEmail.lead == lead_id)
                .order_by(InboundEmail.received_at.desc(), InboundEmail.id.desc()))
    return {"messages": thread.messages(handoffs), "received": list(received)}


class HandoffView(SavedViewsMixin, SecuredModelView):
    creatable = editable = deletable = False
    edit_roles = MANAGERS
    details_template = "admin/handoff_details.html"
    list_template = "admin/workspace_list.html"
    column_list = ("lead", "rep", "status", "due_at", "sla", "promoted_by", "promoted_at",
                   "lead_source", "reason")
    column_labels = {"sla": "SLA", "due_at": "Due", "lead_source": "Source"}
    column_formatters = {"sla": sla_cell}
    list_related = ("lead", "rep")
    column_filters = (*HANDOFF_FILTERS, "status", "origin", "due_at", "promoted_at",
                      "promoted_by")
    column_default_sort = ("due_at", False)
    column_details_list = ("lead", "rep", "status", "promoted_by", "promoted_at", "note",
                           "definition", "due_at", "decided_at", "decided_by", "sla_met",
                           "budget", "authority", "need", "timeline", "reason", "outcome",
                           "notes", "origin", "reminded_at", "escalated_at", "reassigned_at",
                           "replaces")
    only = None

    def _scoped(self, query):
        if self.only == "pending":
            query = query.where(Handoff.status == lifecycle.HandoffStatus.PENDING)
        elif self.only == "overdue":
            query = query.where(Handoff.status == lifecycle.HandoffStatus.PENDING,
                                Handoff.due_at < utcnow())
        return query

    def conversation(self, handoff: Handoff) -> dict:
        return {**conversation(handoff.lead_id), "form": AnswerForm()}

    @expose("/answer/<int:handoff_id>", methods=("POST",))
    def answer_view(self, handoff_id: int):
        """The marketer's answer from the reply box: emailed to the rep."""
        form = AnswerForm()
        back = url_for(".details_view", id=handoff_id)
        if not form.validate_on_submit():
            flash("The form expired. Open the page again and retry.", "error")
            return redirect(back)
        try:
            thread.answer(handoff_id, address=current_user.email, name=current_user.name,
                          text=form.text.data or "", settings=runtime.settings, now=utcnow())
        except DomainError as exc:
            flash(exc.message, "error")
        else:
            flash(f"Sent to {Handoff.get_by_id(handoff_id).rep}", "success")
        return redirect(back)

    @action("reassign", "Reassign to another rep")
    def action_reassign(self, ids):
        return redirect(url_for(".reassign_view", ids=",".join(ids)))

    @action("withdraw", "Withdraw")
    def action_withdraw(self, ids):
        return redirect(url_for(".withdraw_view", ids=",".join(ids)))

    @expose("/reassign/", methods=("GET", "POST"))
    def reassign_view(self):
        form = ReassignForm()
        form.rep.choices = rep_choices()
        return self._bulk(form, "Reassign", lambda handoff_id, now: reassign(
            handoff_id, rep_id=int(form.rep.data), actor=current_user.email, now=now,
            settings=runtime.settings))

    @expose("/withdraw/", methods=("GET", "POST"))
    def withdraw_view(self):
        form = WithdrawForm()
        return self._bulk(form, "Withdraw", lambda handoff_id, now: lifecycle.withdraw(
            handoff_id, actor=current_user.email, reason=form.reason.data or "", now=now))

    def _bulk(self, form, verb: str, apply):
        self.require(MANAGERS)
        ids = [int(i) for i in request.values.get("ids", "").split(",") if i.isdigit()]
        handoffs = list(Handoff.select().where(Handoff.id.in_(ids)))
        if handoffs and form.validate_on_submit():
            done, now = 0, utcnow()
            for handoff in handoffs:
                try:
                    apply(handoff.id, now)
                    done += 1
                except DomainError as exc:
                    flash(f"Handoff {handoff.id}: {exc.message}", "error")
            if done:
                flash(f"{verb}: {done} handoff(s) done.", "success")
            return redirect(url_for(".index_view"))
        return self.render("admin/handoff_bulk.html", form=form, verb=verb, handoffs=handoffs,
                           ids=ids)


class PendingHandoffView(HandoffView):
    only = "pending"


class OverdueHandoffView(HandoffView):
    only = "overdue"


class OutboundForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    first_name = StringField("First name")
    last_name = StringField("Last name")
    company = StringField("Company")
    rep = SelectField("Rep who owns it", validators=[DataRequired()])
    budget = bant_field("budget")
    authority = bant_field("authority")
    need = bant_field("need")
    timeline = bant_field("timeline")
    notes = TextAreaField("Notes", validators=[Length(max=5000)])


class OutboundView(SecuredMixin, BaseView):
    roles = MANAGERS

    @expose("/", methods=("GET", "POST"))
    def index(self):
        form = OutboundForm()
        form.rep.choices = rep_choices()
        if request.method == "GET" and request.args.get("email"):
            form.email.data = request.args["email"]
        if form.validate_on_submit():
            try:
                handoff = lifecycle.register_outbound(
                    normalise_email(form.email.data), fields=lead_fields(form.data),
                    rep_id=int(form.rep.data), notes=form.notes.data or "",
                    bant={f: form[f].data for f in lifecycle.BANT}, actor=current_user.email,
                    now=utcnow())
            except DomainError as exc:
                form.email.errors = [exc.message]
            else:
                flash("Outbound SQL registered.", "success")
                return redirect(url_for("lead.details_view", id=handoff.lead_id))
        return self.render("admin/outbound.html", form=form)


class DefinitionForm(FlaskForm):
    kind = SelectField("Definition of", choices=[SelectChoice("mql", "MQL"),
                                                 SelectChoice("sql", "SQL")])
    text = TextAreaField("Text", validators=[DataRequired(), Length(max=5000)])
    agreed_by_marketing = StringField("Agreed by (marketing)", validators=[DataRequired()])
    agreed_by_sales = StringField("Agreed by (sales)", validators=[DataRequired()])


class DefinitionView(SecuredModelView):
    creatable = editable = deletable = False
    column_list = ("kind", "version", "text", "agreed_by_marketing", "agreed_by_sales",
                   "agreed_at")
    column_default_sort = [("kind", False), ("version", True)]
    list_template = "admin/definitions_list.html"

    @expose("/version/", methods=("GET", "POST"))
    def version_view(self):
        form = DefinitionForm()
        if request.method == "GET":
            current = Definition.current(request.args.get("kind", "mql"))
            if current:
                form.kind.data, form.text.data = current.kind, current.text

        def submit() -> str:
            made = add_definition(form.kind.data, text=form.text.data,
                                  agreed_by_marketing=form.agreed_by_marketing.data,
                                  agreed_by_sales=form.agreed_by_sales.data, agreed_at=utcnow())
            return f"{made} saved; new handoffs use it."
        return self.form_page(form, "admin/definition_new.html", submit, "text")


class AuditView(SecuredModelView):
    roles = MANAGERS
    creatable = editable = deletable = False
    column_list = ("at", "actor", "action", "subject", "details")
    column_filters = ("actor", "action", "at")
    column_default_sort = ("at", True)
