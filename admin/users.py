"""Panel users, for admins: create with a password, change role, deactivate."""

from __future__ import annotations

from flask_admin import expose
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField
from wtforms.validators import DataRequired

from service.db import utcnow
from service.models import User
from service.users import create_user

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
