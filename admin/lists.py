"""Lists people can work in: the filters the leads, handoffs and enrollments lists share (rep,
team, stage, due, source, campaign), each an indexed condition or an IN over an indexed
subquery; and each user's saved views of a list (its own filter and sort arguments only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qs, parse_qsl, urlencode

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_admin.contrib.peewee.filters import BasePeeweeFilter
from flask_login import current_user
from flask_wtf import FlaskForm
from peewee import fn
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length

from service.core.db import utcnow
from service.core.errors import DomainError
from service.core.models import Handoff, Lead, Rep, SavedView, Team
from service.core.text import one_line
from service.reports.today import overdue_scope

from .auth import SecuredMixin

STAGES = ("lead", "mql", "sql", "nurture", "disqualified", "customer")
DUE = (("overdue", "Overdue"), ("today", "Due today (UTC)"), ("week", "Due this week (UTC)"))
LISTS: dict[str, object] = {}  # endpoint → the list view, for saved views
PLAIN_ARGS = ("sort", "desc", "search", "page_size")


def rep_options():
    return [(str(r.id), str(r)) for r in Rep.select().order_by(Rep.name, Rep.email)]


def team_options():
    return [(str(t.id), t.name) for t in Team.select().order_by(Team.name)]


def due_range(value: str, now: datetime) -> tuple[datetime | None, datetime]:
    """(from, until) of a due choice; from None for overdue."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if value == "overdue":
        return None, now
    if value == "today":
        return now, midnight + timedelta(days=1)
    return now, midnight + timedelta(days=7 - now.weekday())


class Choice(BasePeeweeFilter):
    """An equals filter over fixed or computed options (read afresh for each page: reps and
    teams come and go; anything else is not a value), or over typed text (options TEXT)."""

    def current_options(self) -> list[tuple[str, str]]:
        return list(self.options() if callable(self.options) else self.options or ())

    def get_options(self, view):
        """Flask-Admin reads this once, when the panel is built (before any table may
        exist): the options are read per page by SavedViewsMixin._get_filter_groups."""
        return None if callable(self.options) else self.options

    def validate(self, value) -> bool:
        if self.options is None:  # free text: a source or campaign name
            return 0 < len(value) <= 200
        return value in {str(key) for key, _ in self.current_options()}

    def operation(self):
        return "equals"


class Condition(Choice):
    """A Choice applied by a function of (value) → peewee expression."""

    def __init__(self, on, name: str, where, options):
        """on: the list's model's id (Flask-Admin joins another model's column)."""
        super().__init__(on, name, options=options)
        self.where = where

    def apply(self, query, value):
        return query.where(self.where(value))


def _ids(value: str) -> int:
    return int(value) if value.isdigit() else -1


def _reps_of_team(value):
    return Rep.select(Rep.id).where(Rep.team == _ids(value))


def due_condition(column, value, *extra):
    start, end = due_range(value, utcnow())
    where = column < end if start is None else column.between(start, end)
    return where if not extra else where & extra[0]


def _current_owner_is(*condition):
    """Leads whose current handoff (the latest: the Owner column's) meets the condition. Each
    handoff-level filter (rep, team, due) asks about that one handoff, so combined they speak
    of the same one. An IN over the handoffs (index on rep, or on (status, due_at)), each
    checked for a later one of its lead (index on lead)."""
    later = Handoff.alias()
    return Lead.id.in_(Handoff.select(Handoff.lead).where(
        *condition, ~fn.EXISTS(later.select(later.id).where(later.lead == Handoff.lead,
                                                            later.id > Handoff.id))))


def _leads_where(*condition):
    return Lead.select(Lead.id).where(*condition)


TEXT = None  # a filter typed in, not chosen: listing a million leads' campaigns is a scan


def by_lead(on, lead_column) -> list[Condition]:
    """Stage, source and campaign of a list's lead (on: its lead column), through the
    indexes on the lead's stage, (source, created_at) and (utm_campaign, created_at)."""
    def lead_is(column):
        return lambda v: on.in_(_leads_where(column == v))
    return [
        Condition(lead_column, "Lead stage", lead_is(Lead.stage), [(s, s) for s in STAGES]),
        Condition(lead_column, "Source", lead_is(Lead.source), TEXT),
        Condition(lead_column, "Campaign", lead_is(Lead.utm_campaign),
                  TEXT),
    ]


LEAD_FILTERS = [
    Condition(Lead.id, "Owner (rep)", lambda v: _current_owner_is(Handoff.rep == _ids(v)),
              rep_options),
    Condition(Lead.id, "Team", lambda v: _current_owner_is(Handoff.rep.in_(_reps_of_team(v))),
              team_options),
    Condition(Lead.id, "Stage", lambda v: Lead.stage == v, [(s, s) for s in STAGES]),
    Condition(Lead.id, "Handoff due", lambda v: _current_owner_is(due_condition(
        Handoff.due_at, v, Handoff.status == "pending")), DUE),
    Condition(Lead.id, "Source", lambda v: Lead.source == v, TEXT),
    Condition(Lead.id, "UTM source", lambda v: Lead.utm_source == v,
              TEXT),
    Condition(Lead.id, "Campaign", lambda v: Lead.utm_campaign == v,
              TEXT),
]


def mine(value):
    """The user's own handoffs (service.reports.today.overdue_scope, as the home page's)."""
    return overdue_scope(current_user.email, current_user.role)


HANDOFF_FILTERS = [
    Condition(Handoff.id, "Mine", mine, [("1", "Yes")]),
    Condition(Handoff.id, "Rep", lambda v: Handoff.rep == _ids(v), rep_options),
    Condition(Handoff.id, "Team", lambda v: Handoff.rep.in_(_reps_of_team(v)), team_options),
    Condition(Handoff.id, "Deadline", lambda v: due_condition(  # only pending ones have one
        Handoff.due_at, v, Handoff.status == "pending"), DUE),
    *by_lead(Handoff.lead, Handoff.id),
]


def enrollment_filters(model):
    return [Condition(model.id, "Next step due", lambda v: due_condition(model.next_due_at, v),
                      DUE), *by_lead(model.lead, model.id)]


def list_endpoint(view) -> str:
    """A list view's own page: a model view's index_view, a plain view's index."""
    return f"{view.endpoint}.{'index_view' if hasattr(view, 'index_view') else 'index'}"


def list_url(view, query: str = "") -> str:
    """The list with a cleaned query (its keys are the list's own arguments: never one of
    url_for's _external, _anchor…)."""
    return url_for(list_endpoint(view), **parse_qs(query))


def builtin_views() -> list[dict]:
    """Everyone's two views: overdue handoffs of one's own promotions (a sales manager: of
    their teams), and leads suggested this week."""
    return [{"name": "My overdue", "id": None,
             "href": url_for("overdue.index_view", flt0_mine_equals="1")},
            {"name": "Suggested this week", "id": None,
             "href": url_for("suggested.index", since="week")}]


def with_related(rows: list, names: tuple[str, ...]) -> None:
    """Each row's related rows (a handoff's lead and rep…) read in one query a relation for
    the page, never one a row."""
    for name in names:
        relation = getattr(type(rows[0]), name)
        ids = {row.__data__.get(name) for row in rows} - {None}
        found = {r.id: r for r in relation.rel_model.select().where(
            relation.rel_model.id.in_(list(ids)))}
        for row in rows:
            if row.__data__.get(name) in found:
                setattr(row, name, found[row.__data__[name]])


def current_owners(lead_ids: list[int]) -> dict[int, str]:
    """The rep of each lead's latest handoff (the Owner column), in one query."""
    later = Handoff.alias()
    return dict(Handoff.select(Handoff.lead, Rep.email).join(Rep).where(
        Handoff.lead.in_(lead_ids), ~fn.EXISTS(later.select(later.id).where(
            later.lead == Handoff.lead, later.id > Handoff.id))).tuples())


class SavedViewsMixin:
    """A list whose filters and sort a user can save under a name; its rows' related rows
    (list_related) are read once for the page."""
    list_related: tuple[str, ...] = ()

    def get_list(self, *args, **kwargs):
        count, rows = super().get_list(*args, **kwargs)
        if isinstance(rows, list) and rows:
            with_related(rows, self.list_related)
            self.prepare_rows(rows)
        return count, rows

    def prepare_rows(self, rows: list) -> None:
        """What the page's rows need beyond their relations (a lead's owner…)."""
    def list_arguments(self) -> set[str]:
        """The argument names this list reads (its filters, sort, search, page size)."""
        names = set(PLAIN_ARGS)
        for key in getattr(self, "_filter_args", None) or {}:
            names.add(key)
        return names

    def clean_query(self, query: str) -> str:
        """Only the list's own arguments: flt<n>_<filter> for a filter it has, sort…"""
        allowed, kept = self.list_arguments(), []
        for key, value in parse_qsl(query, keep_blank_values=False)[:40]:
            name = key.split("_", 1)[1] if key.startswith("flt") and "_" in key else key
            if name in allowed and (key in PLAIN_ARGS or key[3:].split("_", 1)[0].isdigit()):
                kept.append((key, value[:200]))
        return urlencode(kept)

    def saved_views(self) -> list[dict]:
        views = builtin_views()
        for row in (SavedView.select().where(SavedView.user == current_user.id,
                                             SavedView.endpoint == self.endpoint)
                    .order_by(SavedView.name)):
            views.append({"name": row.name, "href": list_url(self, row.query), "id": row.id})
        return views

    def _get_filter_groups(self):
        groups = super()._get_filter_groups()
        for items in (groups or {}).values():
            for item in items:
                flt = self._filters[item["index"]]
                if isinstance(flt, Choice) and flt.options is not None:
                    item["options"] = [(str(k), str(v)) for k, v in flt.current_options()]
        return groups

    def save_form(self) -> SaveViewForm:
        form = SaveViewForm(formdata=None)
        form.endpoint.data = self.endpoint
        form.query.data = request.query_string.decode("utf-8", "replace")
        return form

    def create_blueprint(self, admin):
        LISTS[self.endpoint] = self
        return super().create_blueprint(admin)


class SaveViewForm(FlaskForm):
    endpoint = HiddenField(validators=[DataRequired()])
    query = HiddenField()
    name = StringField("Name", validators=[DataRequired("Give the view a name."),
                                           Length(max=80)], filters=[one_line])


class DeleteViewForm(FlaskForm):
    pass


class SavedViewsView(SecuredMixin, BaseView):
    """Save, open and delete one's own views; another user's view is a 404."""

    def is_visible(self) -> bool:
        return False

    @expose("/", methods=("POST",))
    def index(self):
        form = SaveViewForm()
        view = LISTS.get(form.endpoint.data or "")
        if view is None:
            abort(404)
        if not form.validate_on_submit():
            flash("; ".join(e for errors in form.errors.values() for e in errors), "error")
            return redirect(url_for(list_endpoint(view)))
        query = view.clean_query(form.query.data or "")
        row = SavedView.get_or_none(user=current_user.id, endpoint=view.endpoint,
                                    name=form.name.data)
        if row is None:
            SavedView.create(user=current_user.id, endpoint=view.endpoint, name=form.name.data,
                             query=query, created_at=utcnow())
        else:
            SavedView.update(query=query).where(SavedView.id == row.id).execute()
        flash(f"View “{form.name.data}” saved.", "success")
        return redirect(url_for(list_endpoint(view), **parse_qs(query)))

    def own(self, view_id: int) -> SavedView:
        row = SavedView.get_or_none(SavedView.id == view_id, SavedView.user == current_user.id)
        if row is None or row.endpoint not in LISTS:
            abort(404)
        return row

    @expose("/<int:view_id>")
    def open_view(self, view_id: int):
        row = self.own(view_id)
        return redirect(url_for(list_endpoint(LISTS[row.endpoint]), **parse_qs(row.query)))

    @expose("/<int:view_id>/delete", methods=("POST",))
    def delete_view(self, view_id: int):
        row = self.own(view_id)
        if not DeleteViewForm().validate_on_submit():
            raise DomainError("The form expired. Open the page again and retry.")
        SavedView.delete().where(SavedView.id == row.id,
                                 SavedView.user == current_user.id).execute()
        flash(f"View “{row.name}” deleted.", "success")
        return redirect(url_for(list_endpoint(LISTS[row.endpoint])))
