"""The rep's links: GET /h/<token> shows the form and changes nothing; POST decides. A link
is withdrawn (410) while its rep is inactive or once the rep's links were revoked."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from service import lifecycle
from service.content.reasons import reject_reasons
from service.core.db import utcnow
from service.core.errors import AlreadyDecided, InvalidInput
from service.core.linked import decided_handoff
from service.core.links import BadLink, read_handoff_token
from service.core.models import Handoff
from service.core.runtime import runtime
from service.core.settings import Settings
from service.handoffs.actions import reject_handoff
from service.handoffs.labels import LABELS
from service.handoffs.queue import link_stands

from .responses import gone, unusable, withdrawn

bp = Blueprint("decisions", __name__)  # private headers: responses.private_when_signed



def _choices(field: str) -> list[SelectChoice]:
    return [SelectChoice(v, LABELS[v]) for v in lifecycle.BANT[field]]


class AcceptForm(FlaskForm):
    budget = SelectField("Budget", choices=_choices("budget"), default="unknown")
    authority = SelectField("Authority", choices=_choices("authority"), default="unknown")
    need = SelectField("Need", choices=_choices("need"), default="unknown")
    timeline = SelectField("Timeline", choices=_choices("timeline"), default="unknown")
    notes = TextAreaField("Notes", validators=[Length(max=5000)])


class RejectForm(FlaskForm):
    reason = SelectField("Reason", validators=[DataRequired("Choose a reason.")])
    notes = TextAreaField("Notes", validators=[Length(max=5000)])


@bp.route("/h/<token>", methods=["GET", "POST"])
def decide(token: str):
    settings = runtime.settings
    try:
        link = read_handoff_token(current_app.secret_key, token,
                                  max_age_hours=settings.handoff.link_ttl_hours)
    except BadLink as exc:
        return unusable(exc)
    handoff = decided_handoff(link)
    if handoff is None:
        return gone()
    moved = handoff.replaced_by.order_by(Handoff.id.desc()).first()
    if moved is not None:
        return render_template("moved.html", handoff=handoff, moved=moved), 410
    if link.rep_id != handoff.rep_id:
        return render_template("message.html", title="Not your link",
                               message="This link was sent to another rep."), 403
    if not link_stands(handoff.rep, link.link_version):
        return withdrawn()
    if handoff.status != lifecycle.HandoffStatus.PENDING:
        status = 409 if request.method == "POST" else 200
        return render_template("decided.html", handoff=handoff), status
    form = _form(link.action, settings)
    if request.method == "POST" and form.validate_on_submit():
        try:
            handoff = _apply(link.action, handoff, form, settings)
        except AlreadyDecided:
            return render_template("decided.html", handoff=Handoff.get_by_id(handoff.id)), 409
        except InvalidInput as exc:
            form.form_errors.append(exc.message)
        else:
            return render_template("decided.html", handoff=handoff, just_now=True)
    status = 400 if request.method == "POST" else 200
    return render_template("decide.html", handoff=handoff, action=link.action, form=form,
                           settings=settings), status


def _form(action: str, settings: Settings) -> FlaskForm:
    if action == "accept":
        return AcceptForm()
    form = RejectForm()
    form.reason.choices = [SelectChoice("", "Choose a reason…")] + [
        SelectChoice(code, reason["label"]) for code, reason in reject_reasons().items()]
    return form


def _apply(action: str, handoff: Handoff, form: FlaskForm, settings: Settings) -> Handoff:
    actor = handoff.rep.email
    if action == "accept":
        bant = {field: getattr(form, field).data for field in lifecycle.BANT}
        return lifecycle.accept(handoff.id, bant=bant, notes=form.notes.data or "", actor=actor,
                                now=utcnow(), requires=settings.handoff.accept_requires)
    return reject_handoff(handoff.id, reason=form.reason.data, notes=form.notes.data or "",
                          actor=actor, settings=settings, now=utcnow())
