"""Login for the panel and the one secured base view every panel view extends."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import (
    abort,
    current_app,
    flash,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask_admin import AdminIndexView, expose
from flask_admin.contrib.peewee import ModelView
from flask_admin.contrib.peewee.filters import FilterConverter
from flask_admin.model import typefmt
from flask_admin.model.filters import convert
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo

from service.accounts import users
from service.core import ratelimit
from service.core.errors import DomainError
from service.core.models import User
from service.core.redirects import redirect_target

from .exports import CsvExport

login_manager = LoginManager()
login_manager.login_view = "admin.login"
login_manager.session_protection = "strong"


class PanelUser(UserMixin):
    """The session holds the user's id with its session token: a new token (logout,
    password change, deactivation) ends every session made with the old one."""

    def __init__(self, user: User):
        self.id, self.email, self.role = user.id, user.email, user.role
        self.name = user.name
        self.session_token = user.session_token

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"


@login_manager.user_loader
def load_user(session_id: str) -> PanelUser | None:
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit() or not token:
        return None  # a session from before tokens
    user = User.get_or_none(User.id == int(user_id), User.session_token == token,
                            User.active == True)  # noqa: E712
    return PanelUser(user) if user else None


def start_session(user: User) -> None:
    session.clear()  # a fresh session at login: nothing carried over
    login_user(PanelUser(user))


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class NewPasswordForm(FlaskForm):
    new = PasswordField(f"New password ({users.MIN_PASSWORD} characters or more)",
                        validators=[DataRequired()])
    again = PasswordField("New password again",
                          validators=[DataRequired(), EqualTo("new", "the two differ")])


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired()])


def safe_next(target: str | None) -> str:
    """Only same-site paths under /admin; anything else goes to the dashboard."""
    home = url_for("admin.index")
    return redirect_target(target, under=home.rstrip("/"), default=home)


EVERYONE = ("admin", "marketer", "sales_manager")
MANAGERS = ("admin", "sales_manager")
MARKETING = ("admin", "marketer")
EDIT_ENDPOINTS = {"create_view", "edit_view", "delete_view", "ajax_update"}


def role_in(roles: tuple[str, ...]) -> bool:
    """Whether the logged-in user has one of these roles (True outside a request, where
    Flask-Admin reads view flags while building itself)."""
    if not has_request_context():
        return True
    return current_user.is_authenticated and current_user.role in roles


class SecuredMixin:
    """Who may open a view (roles); anyone else gets 403, or the login page when anonymous."""
    roles: tuple[str, ...] = EVERYONE

    def is_accessible(self) -> bool:
        return current_user.is_authenticated and current_user.role in self.roles

    def inaccessible_callback(self, name, **kwargs):
        if current_user.is_authenticated:
            abort(403)
        return redirect(url_for("admin.login", next=request.full_path))

    def require(self, roles: tuple[str, ...]) -> None:
        """Refuse a request-changing endpoint to roles that may not use it."""
        if not role_in(roles):
            abort(403)

    def form_page(self, form, template: str, submit, error_field: str):
        """A form that calls one domain function: submit() returns the success message; a
        DomainError it raises is shown on error_field and the form stays filled in."""
        if form.validate_on_submit():
            try:
                message = submit()
            except DomainError as exc:
                getattr(form, error_field).errors = [exc.message]
            else:
                flash(message, "success")
                return redirect(url_for(".index_view"))
        return self.render(template, form=form)


def in_utc(value):
    """A filter's value (a datetime, or a pair of them for "between") read as UTC, as every
    time in the panel is shown; anything else as it is."""
    if isinstance(value, list):
        return [in_utc(part) for part in value]
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) else value


def utc_filter(base: type) -> type:
    return type(base.__name__, (base,), {"clean": lambda self, value: in_utc(
        base.clean(self, value))})


class Filters(FilterConverter):
    @convert("UTCDateTimeField")
    def conv_utc_datetime(self, column, name):
        return [utc_filter(f)(column, name) for f in self.datetime_filters]


def utc_minutes(view, value: datetime, name: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


class SecuredModelView(SecuredMixin, CsvExport, ModelView):
    """Roles may open the view; edit_roles may create, edit and delete (where the view
    allows it at all); action_roles says who may run each action (default edit_roles).
    Refusals are 403s, not hidden buttons alone."""
    edit_roles: tuple[str, ...] = ("admin",)
    action_roles: dict[str, tuple[str, ...]] = {}
    creatable = editable = deletable = True
    can_export = True
    export_types = ["csv"]
    named_filter_urls = True
    form_base_class = FlaskForm
    filter_converter = Filters()

    @property
    def can_create(self):
        return self.creatable and role_in(self.edit_roles)

    @property
    def can_edit(self):
        return self.editable and role_in(self.edit_roles)

    @property
    def can_delete(self):
        return self.deletable and role_in(self.edit_roles)

    def search_placeholder(self) -> str | None:
        """What the search box searches, in words (Flask-Admin would print "None")."""
        names = [str(self.column_labels.get(name, name)).replace("_", " ")
                 for name in self.column_searchable_list or ()]
        return f"Search {', '.join(names)}" if names else "Search"

    def get_query(self):
        return self._scoped(super().get_query())

    def get_count_query(self):
        return self._scoped(super().get_count_query())

    def _scoped(self, query):
        """The rows this view lists (a subclass narrows them: pending, waiting…)."""
        return query

    def is_action_allowed(self, name):
        return role_in(self.action_roles.get(name, self.edit_roles)) and super(
        ).is_action_allowed(name)

    def create_blueprint(self, admin):
        blueprint = super().create_blueprint(admin)
        blueprint.before_request(self.refuse_edits)
        return blueprint

    def refuse_edits(self) -> None:
        """403 for an edit page, or a posted action, the role may not use. Whoever may not
        open the view at all is left to the view's own check (anonymous: the login page)."""
        if not self.is_accessible():
            return
        name = request.endpoint.rpartition(".")[2]
        if name in EDIT_ENDPOINTS and not role_in(self.edit_roles):
            abort(403)
        if name == "action_view" and request.method == "POST" and not self.is_action_allowed(
                request.form.get("action", "")):
            abort(403)
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: utc_minutes}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: utc_minutes}
    page_size = 50
    can_view_details = True


GUESSES = {"limit": 10, "window_seconds": 900, "strict": True}  # wrong passwords a bucket


def guess_refused(bucket: str) -> bool:
    """Count a posted password guess before it is checked (parallel ones get no more);
    True once the bucket's guesses are used up."""
    return request.method == "POST" and not ratelimit.allow(bucket, **GUESSES)


def guessed_right(bucket: str) -> None:
    """A right password is not a guess: give its count back."""
    ratelimit.give_back(bucket, window_seconds=GUESSES["window_seconds"], strict=True)


class AccountView(SecuredMixin, AdminIndexView):
    """The panel's index view with the account pages: log in and out, change a password,
    set one from a reset link. The dashboard (admin/dashboard.py) extends it with the home
    page."""

    OPEN = ("login", "logout", "reset_password")

    def is_accessible(self) -> bool:
        """Anyone may open the login, logout and password reset pages."""
        return (request.endpoint in [f"{self.endpoint}.{name}" for name in self.OPEN]
                or super().is_accessible())

    def is_visible(self) -> bool:  # in the menu only for whoever may open the dashboard
        return super().is_accessible()

    @expose("/login", methods=["GET", "POST"])
    def login(self):
        """Each attempt is counted before it is checked, and given back when it succeeds."""
        form = LoginForm()
        bucket = f"login:{request.remote_addr}"
        if guess_refused(bucket):
            flash("Too many failed logins from here. Try again in 20 minutes.", "error")
            return self.render("admin/login.html", form=form), 429
        if form.validate_on_submit():
            user = users.authenticate(form.email.data, form.password.data)
            if user is not None:
                guessed_right(bucket)
                start_session(user)
                return redirect(safe_next(request.args.get("next")))
            flash("Wrong email or password.", "error")
            return self.render("admin/login.html", form=form), 401
        status = 400 if request.method == "POST" else 200
        return self.render("admin/login.html", form=form), status

    @expose("/logout", methods=["POST"])
    def logout(self):
        """Ends every session of the user, not only this browser's."""
        if current_user.is_authenticated:
            users.end_sessions(current_user.id)
        logout_user()
        return redirect(url_for("admin.login"))

    @expose("/password", methods=["GET", "POST"])
    def change_password(self):
        """Guesses at the current password count like failed logins, per user."""
        form = ChangePasswordForm()
        bucket = f"password:{current_user.id}"
        if guess_refused(bucket):
            flash("Too many tries. Try again in 15 minutes.", "error")
            return self.render("admin/password.html", form=form,
                               title="Change your password"), 429
        if form.validate_on_submit():
            try:
                user = users.change_password(current_user.id, current=form.current.data,
                                             new=form.new.data)
            except DomainError as exc:
                problem = form.current if isinstance(exc, users.WrongPassword) else form.new
                problem.errors = [exc.message]
            else:
                guessed_right(bucket)
                start_session(user)
                flash("Password changed. Your other sessions have ended.", "success")
                return redirect(url_for("admin.index"))
        return self.render("admin/password.html", form=form, title="Change your password")

    @expose("/reset/<token>", methods=["GET", "POST"])
    def reset_password(self, token: str):
        """From the one-time link an admin had emailed; GET shows the form, POST sets."""
        if users.user_for_reset(current_app.secret_key, token) is None:
            return self.render("admin/password.html", form=None, title="Link not valid"), 410
        form = NewPasswordForm()
        if form.validate_on_submit():
            try:
                users.reset_password(current_app.secret_key, token, form.new.data)
            except DomainError as exc:
                form.new.errors = [exc.message]
            else:
                logout_user()
                flash("Password set. Log in with it.", "success")
                return redirect(url_for("admin.login"))
        return self.render("admin/password.html", form=form, title="Set a new password")
