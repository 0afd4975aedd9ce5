"""The Webhooks page (admins only): the endpoints Leadbridge sends its events to, each with
its delivery log. Every change goes through service.webhooks.endpoints: saving checks the
URL (SSRF rules), a secret is shown once (after creating and after rotating), deleting
takes the endpoint's own deliveries only. The pages only read."""

from __future__ import annotations

from flask import abort, flash, g, make_response, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from peewee import fn
from wtforms import BooleanField, RadioField, SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from service import events
from service.core.db import utcnow
from service.core.errors import DomainError, InvalidInput
from service.core.models import Lead, WebhookDelivery, WebhookEndpoint, WebhookEvent
from service.core.runtime import runtime
from service.core.statuses import WebhookStatus
from service.webhooks import endpoints
from service.webhooks.addresses import MAX_URL

from .auth import SecuredModelView

ADMINS = ("admin",)
LOG_PAGE_SIZE = 50
FORMATS = [SelectChoice("standard", "Standard Webhooks: the signed JSON event"),
           SelectChoice("slack", "Slack incoming webhook: a short message, not signed")]
COUNTED = (WebhookStatus.PENDING, WebhookStatus.FAILED)


class EndpointForm(FlaskForm):
    # Not "url": the panel reads that parameter as a return address (admin/guard.py).
    endpoint_url = StringField("URL", validators=[DataRequired("Give the endpoint's URL."),
                                         Length(max=MAX_URL)])
    description = StringField("Description", validators=[Length(max=endpoints.MAX_DESCRIPTION)])
    event_types = SelectMultipleField(
        "Event types (none ticked: every type, new ones included)",
        choices=[SelectChoice(name, name) for name in events.EVENT_TYPES],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    format = RadioField("Format", choices=FORMATS, default="standard")
    active = BooleanField("Active (receives events)", default=True)

    def endpoint_data(self) -> dict:
        """The fields as service.webhooks.endpoints takes them."""
        return {"url": self.endpoint_url.data, "description": self.description.data or "",
                "event_types": list(self.event_types.data or []), "format": self.format.data,
                "active": bool(self.active.data)}


def delivery_counts() -> dict[tuple[int, str], int]:
    """Pending and failed deliveries per endpoint, counted once per request."""
    if "webhook_counts" not in g:
        rows = (WebhookDelivery
                .select(WebhookDelivery.endpoint, WebhookDelivery.status,
                        fn.COUNT(WebhookDelivery.id).alias("n"))
                .where(WebhookDelivery.status.in_(COUNTED))
                .group_by(WebhookDelivery.endpoint, WebhookDelivery.status).tuples())
        g.webhook_counts = {(endpoint_id, status): n for endpoint_id, status, n in rows}
    return g.webhook_counts


def count_of(status: str):
    return lambda v, c, endpoint, p: delivery_counts().get((endpoint.id, status), 0)


def minutes(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def endpoint_state(endpoint: WebhookEndpoint) -> str:
    if endpoint.active:
        return "active"
    if endpoint.disabled_at:
        return f"disabled since {minutes(endpoint.disabled_at)}: {endpoint.disabled_reason}"
    return "turned off"


def subscribed_types(endpoint: WebhookEndpoint) -> str:
    return ", ".join(endpoint.event_types) if endpoint.event_types else "all"


def url_link(view, context, endpoint: WebhookEndpoint, name):
    return Markup('<a href="{}" title="Delivery log">{}</a>').format(
        url_for(".log_view", endpoint_id=endpoint.id), endpoint.url)


def row_links(view, context, endpoint: WebhookEndpoint, name):
    return Markup('<a href="{}">Delivery log</a> · <a href="{}">Edit</a>').format(
        url_for(".log_view", endpoint_id=endpoint.id),
        url_for(".change_view", endpoint_id=endpoint.id))


def delivery_page(endpoint_id: int, status: str | None, page: int):
    """One page of the endpoint's deliveries with their events, newest first, and how many
    there are in all."""
    query = (WebhookDelivery.select(WebhookDelivery, WebhookEvent).join(WebhookEvent)
             .where(WebhookDelivery.endpoint == endpoint_id))
    if status:
        query = query.where(WebhookDelivery.status == status)
    rows = list(query.order_by(WebhookDelivery.id.desc()).paginate(page + 1, LOG_PAGE_SIZE))
    return rows, query.count()


def existing_leads(deliveries: list[WebhookDelivery]) -> set[int]:
    """Which of the events' leads still have a page (an erased or merged one may not)."""
    ids = {d.event.lead_id for d in deliveries if d.event.lead_id is not None}
    if not ids:
        return set()
    return {lead_id for (lead_id,) in Lead.select(Lead.id).where(Lead.id.in_(ids)).tuples()}


def status_filter(value: str | None) -> str | None:
    if not value:
        return None
    if value not in set(WebhookStatus):
        raise InvalidInput(f"status must be one of {', '.join(WebhookStatus)}")
    return value


def not_kept(response):
    """A page showing a secret: no cache, no proxy, no back button keeps a copy."""
    response = make_response(response)
    response.headers["Cache-Control"] = "no-store"
    return response


class WebhookEndpointView(SecuredModelView):
    roles = edit_roles = ADMINS
    creatable = editable = deletable = False
    can_view_details = can_export = False
    list_template = "admin/webhooks_list.html"
    column_list = ("url", "description", "event_types", "format", "state", "failing_since",
                   "pending", "failed", "links")
    column_labels = {"url": "URL", "state": "Active", "failing_since": "Failing since",
                     "pending": "Pending", "failed": "Failed", "links": ""}
    column_sortable_list = ("url", "format", "failing_since")
    column_default_sort = ("created_at", True)
    column_formatters = {
        "url": url_link, "links": row_links,
        "event_types": lambda v, c, m, p: subscribed_types(m),
        "state": lambda v, c, m, p: endpoint_state(m),
        "pending": count_of(WebhookStatus.PENDING), "failed": count_of(WebhookStatus.FAILED),
    }

    @expose("/add/", methods=("GET", "POST"))
    def new_view(self):
        form = EndpointForm()
        if form.validate_on_submit():
            try:
                endpoint, secret = endpoints.create(
                    form.endpoint_data(), actor=current_user.email,
                    settings=runtime.settings, now=utcnow())
            except DomainError as exc:
                form.endpoint_url.errors = [exc.message]
            else:
                return not_kept(self.render("admin/webhook_secret.html", endpoint=endpoint,
                                            secret=secret, old_until=None))
        return self.render("admin/webhook_form.html", form=form, endpoint=None)

    @expose("/change/<int:endpoint_id>", methods=("GET", "POST"))
    def change_view(self, endpoint_id: int):
        endpoint = endpoints.get(endpoint_id)
        form = EndpointForm(obj=endpoint, endpoint_url=endpoint.url)
        if form.validate_on_submit():
            try:
                endpoints.update(endpoint_id, form.endpoint_data(), actor=current_user.email,
                                 settings=runtime.settings, now=utcnow())
            except DomainError as exc:
                form.endpoint_url.errors = [exc.message]
            else:
                flash("Endpoint saved.", "success")
                return redirect(url_for(".log_view", endpoint_id=endpoint_id))
        return self.render("admin/webhook_form.html", form=form, endpoint=endpoint)

    @expose("/rotate/<int:endpoint_id>", methods=("POST",))
    def rotate_view(self, endpoint_id: int):
        endpoint, secret = endpoints.rotate_secret(endpoint_id, actor=current_user.email,
                                                   settings=runtime.settings, now=utcnow())
        return not_kept(self.render("admin/webhook_secret.html", endpoint=endpoint,
                                    secret=secret, old_until=endpoint.previous_secret_until))

    @expose("/remove/<int:endpoint_id>", methods=("GET", "POST"))
    def remove_view(self, endpoint_id: int):
        """GET asks (naming what goes with it); the POST deletes."""
        endpoint = endpoints.get(endpoint_id)
        if request.method == "POST":
            endpoints.delete(endpoint_id, actor=current_user.email, now=utcnow())
            flash(f"Deleted the endpoint {endpoint.url} and its deliveries.", "success")
            return redirect(url_for(".index_view"))
        deliveries = WebhookDelivery.select().where(
            WebhookDelivery.endpoint == endpoint_id).count()
        return self.render("admin/webhook_delete.html", endpoint=endpoint,
                           deliveries=deliveries)

    @expose("/log/<int:endpoint_id>")
    def log_view(self, endpoint_id: int):
        endpoint = endpoints.get(endpoint_id)
        status = status_filter(request.args.get("status"))
        page = request.args.get("page", 0, type=int)
        if not 0 <= page <= 10**6:
            abort(400, "page must be a page number")
        rows, total = delivery_page(endpoint_id, status, page)
        return self.render("admin/webhook_log.html", endpoint=endpoint, rows=rows,
                           total=total, status=status, page=page,
                           pages=max(1, -(-total // LOG_PAGE_SIZE)), statuses=list(WebhookStatus),
                           leads=existing_leads(rows), state=endpoint_state(endpoint),
                           types=subscribed_types(endpoint))

    @expose("/test/<int:endpoint_id>", methods=("POST",))
    def test_event_view(self, endpoint_id: int):
        delivery = endpoints.send_test_event(endpoint_id, actor=current_user.email,
                                             now=utcnow())
        flash(f"Test event {delivery.event.public_id} queued for delivery.", "success")
        return redirect(url_for(".log_view", endpoint_id=endpoint_id))

    @expose("/retry/<int:delivery_id>", methods=("POST",))
    def retry_view(self, delivery_id: int):
        delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
        if delivery is None:
            abort(404)
        try:
            endpoints.retry_now(delivery_id, actor=current_user.email, now=utcnow())
        except DomainError as exc:
            flash(f"Delivery {delivery_id}: {exc.message}", "error")
        else:
            flash(f"Delivery {delivery_id} will be tried again now.", "success")
        return redirect(url_for(".log_view", endpoint_id=delivery.endpoint_id))
