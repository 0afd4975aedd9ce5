"""Panel users, for admins: create with a password, change role, deactivate (which ends
the user's sessions), email a one-time password reset link."""

from __future__ import annotations

from flask import flash
from flask_admin import expose
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField
from wtforms.validators import DataRequired

from service.accounts.users import create_user, send_reset_link
from service.core.db import utcnow
from service.core.errors import DomainError
from service.core.models import User, new_session_token

from .actions import action
from .auth import SecuredModelView


def role_field() -> SelectField:
    return SelectField("Role", choices=[SelectChoice(r, r.replace("_", " ")) for r in User.ROLES])


class NewUserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    role = role_field()
    password = PasswordField("Password (10 characters or more)", validators=[DataRequired()])


class UserView(SecuredModelView):
    roles = ("admin",)
    creatable = deletable = False
    column_list = ("email", "role", "active", "created_at")
    column_searchable_list = ("email",)
    column_filters = ("role", "active")
    column_exclude_list = ("password_hash",)
    column_details_exclude_list = ("password_hash",)
    column_export_exclude_list = ("password_hash",)
    form_columns = ("role", "active")
    form_overrides = {"role": SelectField}
    form_args = {"role": {"choices": [SelectChoice(r, r) for r in User.ROLES]}}
    list_template = "admin/users_list.html"

    @expose("/invite/", methods=("GET", "POST"))
    def invite_view(self):
        form = NewUserForm()

        def submit() -> str:
            user = create_user(form.email.data, role=form.role.data,
                               password=form.password.data, now=utcnow())
            return f"{user.email} can now log in as {user.role}."
        return self.form_page(form, "admin/user_new.html", submit, "email")

    def on_model_change(self, form, model: User, is_created: bool) -> None:
        if not model.active:
            model.session_token = new_session_token()  # deactivated: every session ends

    @action("send_reset", "Email a password reset link",
            "Email each selected user a one-time link to set a new password?")
    def action_send_reset(self, ids):
        for user_id in ids:
            try:
                user = send_reset_link(int(user_id), now=utcnow())
            except DomainError as exc:
                flash(exc.message, "error")
            else:
                flash(f"A one-time reset link goes to {user.email} (valid for an hour).",
                      "success")
