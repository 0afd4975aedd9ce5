"""The Inbound list: every email that came in, by default those waiting for a person (held,
unmatched), each with its reason. A person discards one, attaches it to a lead, or posts a
held one to its thread after all; each decision is taken once (service.inbound.review)."""

from __future__ import annotations

from email import message_from_bytes
from email import policy as email_policy

from flask import make_response, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.peewee.filters import FilterEqual
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from service.core.addresses import normalise_email
from service.core.errors import DomainError, InvalidInput, NotFound
from service.core.models import InboundEmail, Lead
from service.core.redirects import redirect_target
from service.core.runtime import runtime
from service.core.statuses import InboundStatus
from service.inbound import review

from .actions import action, apply_each
from .auth import EVERYONE, SecuredModelView
from .guard import inert_links, panel_root

KINDS = ("reply", "auto_reply", "out_of_office", "report")
CHANNELS = ("imap", "postmark", "mailgun", "sendgrid", "ses")


def waiting_count() -> int:
    """Emails a person has to look at: the dashboard shows the number."""
    return InboundEmail.select().where(InboundEmail.status.in_(review.WAITING)).count()


def sender(email: InboundEmail) -> str:
    if email.from_name:
        return f"{email.from_name} <{email.from_address}>"
    return email.from_address


def lead_link(view, context, email: InboundEmail, name):
    if email.lead_id is None:
        return ""
    return Markup('<a href="{}">{}</a>').format(
        url_for("lead.details_view", id=email.lead_id), email.lead)


def find_lead(value: str) -> Lead:
    """The lead a person names by its email address or its id."""
    value = value.strip()
    if value.isdigit():
        lead = Lead.get_or_none(Lead.id == int(value))
    else:
        try:
            lead = Lead.get_or_none(Lead.email == normalise_email(value))
        except InvalidInput:
            lead = None
    if lead is None:
        raise NotFound(f"no lead has the email or id {value}")
    return lead


def inert_message(raw: bytes) -> bytes:
    """The raw email as it came, except that a text part quoting a working decision,
    unsubscribe or click link (a rep's reply quotes the handoff email) has it made unusable,
    as everywhere in the panel. Parts without one keep their bytes."""
    try:
        return _inert_parts(raw)
    except Exception:  # mail too odd to walk (nested past the recursion limit): as bytes
        return inert_links(raw.decode("latin-1")).encode("latin-1")


def _inert_parts(raw: bytes) -> bytes:
    message = message_from_bytes(raw, policy=email_policy.compat32)
    changed = False
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.is_multipart():
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = (part.get_payload(decode=True) or b"").decode(charset, "replace")
        except LookupError:
            text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            charset = "utf-8"
        inert = inert_links(text)
        if inert != text:
            del part["Content-Transfer-Encoding"]
            part.set_payload(inert, charset)
            changed = True
    return message.as_bytes() if changed else inert_links(raw.decode("latin-1")).encode(
        "latin-1")


class AttachForm(FlaskForm):
    lead = StringField("The lead's email address or id",
                       validators=[DataRequired("Name the lead."), Length(max=254)])


class InboundView(SecuredModelView):
    """only="waiting" (the Inbound entry) lists held and unmatched email; None lists all."""
    creatable = editable = deletable = False
    action_roles = {"discard": EVERYONE, "attach": EVERYONE, "release": EVERYONE}
    list_template = "admin/inbound_list.html"
    details_template = "admin/inbound_details.html"
    column_list = ("received_at", "channel", "from_address", "subject", "kind", "status",
                   "reason", "lead")
    column_labels = {"received_at": "Received", "from_address": "From"}
    column_details_list = ("received_at", "channel", "from_address", "subject", "kind",
                           "status", "reason", "lead", "handoff", "enrollment", "message_id",
                           "reviewed_by", "reviewed_at")
    column_formatters = {"from_address": lambda v, c, m, p: sender(m), "lead": lead_link}
    column_formatters_detail = column_formatters
    column_formatters_export = {"from_address": lambda v, c, m, p: sender(m),
                                "lead": lambda v, c, m, p: str(m.lead) if m.lead_id else ""}
    column_filters = (
        FilterEqual(InboundEmail.status, "Status", options=[(s, s) for s in InboundStatus]),
        FilterEqual(InboundEmail.kind, "Kind", options=[(k, k) for k in KINDS]),
        FilterEqual(InboundEmail.channel, "Channel", options=[(c, c) for c in CHANNELS]),
        "received_at")
    column_searchable_list = ("from_address", "subject")
    column_default_sort = ("received_at", True)
    only = None

    def _scoped(self, query):
        if self.only == "waiting":
            query = query.where(InboundEmail.status.in_(review.WAITING))
        return query

    @action("discard", "Discard", "Discard the selected emails?")
    def action_discard(self, ids):
        self._decide(ids, "discarded", lambda email_id, now: review.discard(
            email_id, actor=current_user.email, now=now))

    @action("release", "Post to its thread")
    def action_release(self, ids):
        self._decide(ids, "posted to its thread", lambda email_id, now: review.release(
            email_id, actor=current_user.email, settings=runtime.settings,
            secret=runtime.secret_key, now=now))

    @action("attach", "Attach to a lead")
    def action_attach(self, ids):
        return redirect(url_for(".attach_view", ids=",".join(ids),
                                url=request.form.get("url") or None))

    @expose("/attach/", methods=("GET", "POST"))
    def attach_view(self):
        self.require(EVERYONE)
        ids = [int(i) for i in request.values.get("ids", "").split(",") if i.isdigit()]
        emails = list(InboundEmail.select().where(InboundEmail.id.in_(ids)))
        form = AttachForm()
        back = redirect_target(request.values.get("url"), under=panel_root(),
                               default=url_for(".index_view"))
        if emails and form.validate_on_submit():
            try:
                lead = find_lead(form.lead.data)
            except DomainError as exc:
                form.lead.errors = [exc.message]
            else:
                self._decide([e.id for e in emails], f"attached to {lead}",
                             lambda email_id, now: review.attach(
                                 email_id, lead.id, actor=current_user.email, now=now))
                return redirect(back)
        return self.render("admin/inbound_attach.html", form=form, emails=emails, ids=ids,
                           back=back)

    @expose("/raw/<int:email_id>")
    def raw_view(self, email_id: int):
        """The email as received, to open in a mail program: a download, never a page."""
        email = InboundEmail.get_or_none(InboundEmail.id == email_id)
        if email is None or email.raw is None:
            return "No such email.", 404
        response = make_response(inert_message(bytes(email.raw)))
        response.headers["Content-Type"] = "message/rfc822"
        response.headers["Content-Disposition"] = f"attachment; filename=inbound-{email_id}.eml"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def _decide(self, ids, done: str, apply) -> None:
        apply_each(ids, apply, noun="email", done=done)


class WaitingInboundView(InboundView):
    only = "waiting"
