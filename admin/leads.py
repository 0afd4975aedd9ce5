"""Panel views of leads: the list with its lifecycle actions (promote, win, recycle, reopen,
merge, enroll, GDPR export and erase), the timeline, and the suggested MQLs. Stages are never
form fields: they change only through lifecycle actions."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from flask import flash, make_response, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import SelectChoice, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from service import lifecycle
from service.core.db import utcnow
from service.core.errors import DomainError, InvalidInput
from service.core.models import (
    Definition,
    Handoff,
    Lead,
)
from service.core.runtime import runtime
from service.core.text import one_line
from service.handoffs.actions import promote_lead, recycle_lead
from service.handoffs.assignment import NoReps
from service.leads import scoring
from service.leads.gdpr import erase_lead, export_lead
from service.leads.merge import merge_leads

from . import lead_page, lists
from .actions import action, apply_each
from .auth import EVERYONE, MANAGERS, MARKETING, SecuredMixin, SecuredModelView, role_in
from .nurture import enroll_view
from .sales import rep_choices


class PromoteForm(FlaskForm):
    rep = SelectField("Rep")
    note = TextAreaField("Note for the rep", validators=[Length(max=5000)])


def policy() -> scoring.Policy:
    return scoring.Policy.from_settings(runtime.settings)


def listed_owner(lead: Lead) -> str:
    """The rep holding the lead's latest handoff: read for the list's page
    (LeadView.prepare_rows), else on its own (an export's row)."""
    known = getattr(lead, "owner_email", None)
    return lists.current_owners([lead.id]).get(lead.id, "") if known is None else known


def selected_ids() -> list[int]:
    values = request.values.getlist("id") + request.values.get("ids", "").split(",")
    return [int(v) for v in values if v.isdigit()]


class LeadView(lists.SavedViewsMixin, SecuredModelView):
    creatable = deletable = False
    edit_roles = MARKETING
    action_roles = {"promote": EVERYONE, "merge": MARKETING, "enroll": MARKETING,
                    "stop_nurture": MARKETING, "reassign": MANAGERS,
                    "win": MANAGERS, "recycle": MANAGERS, "reopen": MANAGERS,
                    "outbound": MANAGERS, "export": ("admin",), "erase": ("admin",)}
    details_template = "admin/lead_details.html"
    list_template = "admin/workspace_list.html"
    column_list = ("email", "name", "company", "stage", "score_log", "owner",
                   "last_activity_at", "utm_campaign", "source", "created_at")
    column_labels = {"score_log": "Score", "last_activity_at": "Last activity",
                     "utm_campaign": "Campaign"}
    column_sortable_list = ("email", "company", "stage", "score_log",
                            "last_activity_at", "utm_campaign", "source", "created_at")
    column_formatters = {
        "score_log": lambda v, c, m, p: f"{policy().score(m.score_log, utcnow()):.0f}",
        "owner": lambda v, c, m, p: listed_owner(m)}
    column_formatters_export = {
        "score_log": lambda v, c, m, p: f"{policy().score(m.score_log, utcnow()):.1f}",
        "owner": lambda v, c, m, p: listed_owner(m)}
    column_searchable_list = ("email", "company", "last_name")
    column_filters = (*lists.LEAD_FILTERS, "country", "company", "created_at",
                      "last_activity_at", "re_engaged_at")
    column_default_sort = ("created_at", True)
    form_columns = Lead.EDITABLE
    form_args = {name: {"filters": [one_line]} for name in Lead.EDITABLE}  # names reach mail

    def __init__(self, **kwargs):
        super().__init__(Lead, **kwargs)

    def prepare_rows(self, rows: list[Lead]) -> None:
        owners = lists.current_owners([lead.id for lead in rows])
        for lead in rows:
            lead.owner_email = owners.get(lead.id, "")

    def workspace(self, lead: Lead) -> dict:
        """The lead page: header and actions, timeline, score breakdown, nurture."""
        return lead_page.workspace(lead, request.args.get("before"), policy())

    def confirm_handler(self, question: str) -> str:
        return lead_page.confirm_handler(question)

    @expose("/details/")
    def details_view(self):
        lead_page.before_from(request.args.get("before"))  # a bad cursor is a 400 first
        return super().details_view()

    @action("stop_nurture", "Stop nurture", "Stop the nurture emails to the selected leads?")
    def action_stop_nurture(self, ids):
        now = utcnow()
        stopped = sum(lifecycle.stop_enrollments(int(i), reason="stopped by hand", now=now,
                                                 actor=current_user.email) for i in ids)
        flash(f"{stopped} enrollment(s) stopped.", "success")

    @action("reassign", "Reassign the pending handoff")
    def action_reassign(self, ids):
        pending = [str(h.id) for h in Handoff.select(Handoff.id).where(
            Handoff.lead.in_([int(i) for i in ids]), Handoff.status == "pending")]
        if not pending:
            flash("None of the selected leads has a pending handoff.", "error")
            return redirect(url_for(".index_view"))
        return redirect(url_for("pending.reassign_view", ids=",".join(pending)))

    @action("promote", "Promote to MQL")
    def action_promote(self, ids):
        return redirect(url_for(".promote_view", ids=",".join(ids)))

    @action("win", "Mark won (customer)", "Mark the selected SQLs as customers?")
    def action_win(self, ids):
        self._move(ids, "won", lambda i, now: lifecycle.win(i, actor=current_user.email,
                                                             now=now))

    @action("recycle", "Recycle to nurture", "Move the selected SQLs back to nurture?")
    def action_recycle(self, ids):
        self._move(ids, "recycled", lambda i, now: recycle_lead(
            i, actor=current_user.email, reason="deal stalled or lost",
            settings=runtime.settings, now=now))

    @action("reopen", "Reopen disqualified", "Reopen the selected disqualified leads?")
    def action_reopen(self, ids):
        self._move(ids, "reopened", lambda i, now: lifecycle.reopen(
            i, actor=current_user.email, now=now))

    @action("outbound", "Register as outbound SQL")
    def action_outbound(self, ids):
        lead = Lead.get_or_none(Lead.id == int(ids[0]))
        return redirect(url_for("outbound.index", email=lead.email if lead else ""))

    def _move(self, ids, done: str, apply) -> None:
        apply_each(ids, apply, noun="lead", done=done)

    @action("enroll", "Enroll in a nurture sequence")
    def action_enroll(self, ids):
        return redirect(url_for(".enroll_view", ids=",".join(ids)))

    @expose("/enroll/", methods=("GET", "POST"))
    def enroll_view(self):
        self.require(MARKETING)
        return enroll_view(self, selected_ids())

    @action("export", "Export data (GDPR, JSON)")
    def action_export(self, ids):
        data = {int(i): export_lead(int(i)) for i in ids}
        response = make_response(json.dumps(data, indent=2, default=str))
        response.headers["Content-Type"] = "application/json"
        response.headers["Content-Disposition"] = "attachment; filename=leads-export.json"
        return response

    @action("erase", "Erase (GDPR)", "Erase the selected leads and everything about them? "
            "Only a hashed suppression entry stays. This cannot be undone.")
    def action_erase(self, ids):
        settings, done = runtime.settings, 0
        for lead_id in ids:
            erase_lead(int(lead_id), actor=current_user.email,
                       data_dir=Path(settings.data_dir), now=utcnow())
            done += 1
        flash(f"{done} lead(s) erased.", "success")

    @action("merge", "Merge two duplicates")
    def action_merge(self, ids):
        return redirect(url_for(".merge_view", ids=",".join(ids)))

    @expose("/merge/", methods=("GET", "POST"))
    def merge_view(self):
        self.require(MARKETING)
        ids = selected_ids()
        leads = list(Lead.select().where(Lead.id.in_(ids)).order_by(Lead.created_at))
        if len(leads) != 2:
            flash("Select exactly two leads to merge.", "error")
            return redirect(url_for(".index_view"))
        form = MergeForm()
        form.survivor.choices = [SelectChoice(str(lead.id), str(lead)) for lead in leads]
        if form.validate_on_submit():
            survivor = int(form.survivor.data)
            merged = next(lead.id for lead in leads if lead.id != survivor)
            try:
                merge_leads(survivor, merged, actor=current_user.email, now=utcnow())
            except DomainError as exc:
                flash(exc.message, "error")
            else:
                flash("Leads merged.", "success")
                return redirect(url_for(".details_view", id=survivor))
        return self.render("admin/merge.html", form=form, leads=leads, ids=ids)

    @expose("/promote/", methods=("GET", "POST"))
    def promote_view(self):
        ids = selected_ids()
        form = PromoteForm()
        form.rep.choices = [SelectChoice("", "Assign by the rules (territory, round-robin)"),
                            *rep_choices()]
        if ids and form.validate_on_submit():
            self._promote(ids, int(form.rep.data) if form.rep.data else None,
                          form.note.data or "")
            return redirect(url_for(".index_view"))
        leads = Lead.select().where(Lead.id.in_(ids)) if ids else []
        return self.render("admin/promote.html", form=form, leads=leads, ids=ids,
                           definition=Definition.current("mql"))

    def _promote(self, ids: list[int], rep_id: int | None, note: str) -> None:
        settings, now, done = runtime.settings, utcnow(), 0
        for lead_id in ids:
            try:
                promote_lead(lead_id, rep_id=rep_id, note=note, actor=current_user.email,
                             settings=settings, now=now)
                done += 1
            except NoReps as exc:
                flash(no_reps_message(lead_id, exc), "error")
            except DomainError as exc:
                flash(f"Lead {lead_id}: {exc.message}", "error")
        if done:
            flash(f"Promoted {done} lead(s) to MQL; the rep has been emailed.", "success")


def no_reps_message(lead_id: int, exc: NoReps) -> Markup:
    """The refusal with a link to add a rep, for those who may; others learn who can."""
    if role_in(MANAGERS):
        return Markup('Lead {}: {} <a href="{}">Add a rep</a>').format(
            lead_id, exc.message, url_for("rep.create_view"))
    return Markup("Lead {}: {} (a sales manager or an admin can add reps)").format(
        lead_id, exc.message)


class MergeForm(FlaskForm):
    survivor = SelectField("Keep", validators=[DataRequired()])


class SuggestedView(lists.SavedViewsMixin, SecuredMixin, BaseView):
    """Leads over the threshold, narrowed by source, campaign or recent activity."""

    def list_arguments(self) -> set[str]:
        return {"source", "campaign", "since"}

    def clean_query(self, query: str) -> str:
        return urlencode([(k, v[:200]) for k, v in parse_qsl(query)[:10]
                          if k in self.list_arguments()])

    @expose("/")
    def index(self):
        rules, now = policy(), utcnow()
        since = request.args.get("since", "")
        if since not in ("", "week"):
            raise InvalidInput("since must be week or nothing")
        query = scoring.suggested(rules, now)
        if request.args.get("source"):
            query = query.where(Lead.source == request.args["source"])
        if request.args.get("campaign"):
            query = query.where(Lead.utm_campaign == request.args["campaign"])
        if since:
            query = query.where(Lead.last_activity_at >= now - timedelta(days=7))
        return self.render("admin/suggested.html", leads=list(query.limit(500)), policy=rules,
                           now=now, args=request.args)
