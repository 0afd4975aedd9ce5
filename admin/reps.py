"""Panel views of the sales organisation: reps (with handing over their pending handoffs)
and teams."""

from __future__ import annotations

from flask import flash
from flask_login import current_user
from wtforms.validators import StopValidation, ValidationError

from service.core.addresses import normalise_email
from service.core.db import utcnow
from service.core.errors import InvalidInput
from service.core.runtime import runtime
from service.core.text import one_line
from service.handoffs.actions import hand_over
from service.handoffs.queue import revoke_links
from service.handoffs.reps import check_time_zone

from .actions import action
from .auth import MANAGERS, SecuredModelView


def email_address(*, required: bool):
    """A form validator: the field holds one email address, checked and normalised as the
    API does (an address reaches email headers and the envelope), or a form error."""
    def check(form, field) -> None:
        if not required and not (field.data or "").strip():
            field.data = ""
            return
        try:
            field.data = normalise_email(field.data)
        except InvalidInput as exc:
            raise ValidationError(str(exc)) from None
    return check


def time_zone(form, field) -> None:
    """A form validator: an IANA time zone name, as the API takes it. It stops the chain:
    the Optional() that the column's default adds after it would clear an empty one's
    error."""
    field.data = (field.data or "").strip()
    try:
        check_time_zone(field.data)
    except InvalidInput as exc:
        raise StopValidation(f"{exc}: use a name such as Europe/London.") from None


class RepView(SecuredModelView):
    edit_roles = MANAGERS
    column_list = ("email", "name", "team", "manager_email", "time_zone", "weight", "capacity",
                   "active", "out_of_office", "away_from", "away_until")
    column_searchable_list = ("email", "name")
    form_columns = column_list
    form_args = {"name": {"filters": [one_line]},  # a name reaches email headers
                 "email": {"validators": [email_address(required=True)]},
                 "manager_email": {"validators": [email_address(required=False)]},
                 "time_zone": {"validators": [time_zone]}}

    @action("hand_over", "Reassign their pending handoffs",
            "Give every pending handoff of the selected reps to the next rep of their team?")
    def action_hand_over(self, ids):
        moved, stuck = hand_over([int(i) for i in ids], actor=current_user.email,
                                 settings=runtime.settings, now=utcnow())
        flash(f"{moved} handoff(s) reassigned.", "success")
        for message in stuck:
            flash(message, "error")

    @action("revoke_links", "Revoke their queue links",
            "End the links to their queue page in every email sent so far? Their next email "
            "brings a new one.")
    def action_revoke_links(self, ids):
        revoked = revoke_links([int(i) for i in ids], actor=current_user.email, now=utcnow())
        flash(f"The queue links of {revoked} rep(s) were revoked.", "success")

    def after_model_change(self, form, model, is_created):
        """A rep made inactive, or given another address, loses their queue and decision
        links (the old mailbox may be someone else's now): their next email brings new
        ones."""
        deactivated = form.active.object_data and not model.active
        readdressed = form.email.object_data != model.email
        if not is_created and (deactivated or readdressed):
            revoke_links([model.id], actor=current_user.email, now=utcnow())


class TeamView(SecuredModelView):
    edit_roles = MANAGERS
    column_list = form_columns = ("name", "manager_email")
    form_args = {"name": {"filters": [one_line]},  # a name reaches email headers
                 "manager_email": {"validators": [email_address(required=False)]}}
