"""The panel: Flask-Admin at /admin behind a login."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme
from jinja2 import ChoiceLoader, FileSystemLoader

from service.core import csp
from service.core.models import (
    AuditEvent,
    Definition,
    Enrollment,
    Handoff,
    InboundEmail,
    IntegrationKey,
    OutboxEmail,
    Rep,
    Suppression,
    Team,
    User,
    WebhookEndpoint,
)

from . import auth, guard, layout
from .content import EmailTemplatesView, ReasonsView, SequencesView
from .dashboard import HomeView
from .inbound import InboundView, WaitingInboundView
from .integrations import FormsView, IntegrationKeyView
from .leads import LeadView, SuggestedView
from .lists import SavedViewsView
from .nurture import EnrollmentView, ReengagedView, SuppressionView
from .outbox import OutboxView
from .reps import RepView, TeamView
from .sales import (
    AuditView,
    DefinitionView,
    HandoffView,
    OutboundView,
    OverdueHandoffView,
    PendingHandoffView,
)
from .users import UserView
from .webhooks import WebhookEndpointView


def init_app(app: Flask) -> None:
    app.jinja_loader = ChoiceLoader(
        [app.jinja_loader, FileSystemLoader(Path(__file__).parent / "templates")])
    auth.login_manager.init_app(app)
    app.register_blueprint(layout.assets)  # the stylesheet, before the guarded views
    before = set(app.blueprints)
    panel = Admin(app, name="Leadbridge", index_view=HomeView(url="/admin"),
                  theme=Bootstrap4Theme(swatch="flatly"), csp_nonce_generator=csp.nonce)
    panel.add_view(LeadView(name="All leads", endpoint="lead", category="Leads"))
    panel.add_view(SuggestedView(name="Suggested MQLs", endpoint="suggested", category="Leads"))
    panel.add_view(WaitingInboundView(InboundEmail, name="Waiting for a person",
                                      endpoint="inbound", category="Inbound"))
    panel.add_view(InboundView(InboundEmail, name="All received email", endpoint="inbound_all",
                               category="Inbound"))
    panel.add_view(PendingHandoffView(Handoff, name="Pending", endpoint="pending",
                                      category="Handoffs"))
    panel.add_view(OverdueHandoffView(Handoff, name="Overdue", endpoint="overdue",
                                      category="Handoffs"))
    panel.add_view(HandoffView(Handoff, name="All handoffs", endpoint="handoff",
                               category="Handoffs"))
    panel.add_view(OutboundView(name="Register outbound SQL", endpoint="outbound",
                                category="Sales"))
    panel.add_view(RepView(Rep, name="Reps", endpoint="rep", category="Sales"))
    panel.add_view(TeamView(Team, name="Teams", endpoint="team", category="Sales"))
    panel.add_view(ReengagedView(name="Re-engaged", endpoint="reengaged", category="Leads"))
    panel.add_view(SequencesView(name="Sequences", endpoint="sequences", category="Content"))
    panel.add_view(EmailTemplatesView(name="Email templates", endpoint="email_templates",
                                      category="Content"))
    panel.add_view(ReasonsView(name="Reject reasons", endpoint="reject_reasons",
                               category="Content"))
    panel.add_view(EnrollmentView(Enrollment, name="Enrollments", endpoint="enrollment",
                                  category="Nurture"))
    panel.add_view(SuppressionView(Suppression, name="Suppression list", endpoint="suppression",
                                   category="Nurture"))
    panel.add_view(DefinitionView(Definition, name="Definitions", endpoint="definition"))
    panel.add_view(OutboxView(OutboxEmail, name="Email outbox", endpoint="outbox"))
    panel.add_view(FormsView(name="Forms", endpoint="form_snippets", category="Integrations"))
    panel.add_view(IntegrationKeyView(IntegrationKey, name="Keys", endpoint="keys",
                                      category="Integrations"))
    panel.add_view(WebhookEndpointView(WebhookEndpoint, name="Webhooks",
                                       endpoint="webhook_endpoints", url="webhooks"))
    panel.add_view(UserView(User, name="Users", endpoint="user", category="Admin"))
    panel.add_view(SavedViewsView(name="Saved views", endpoint="saved", url="saved"))
    panel.add_view(AuditView(AuditEvent, name="Audit log", endpoint="audit", category="Admin"))
    # The row delete confirmation Flask-Admin's list template writes inline (each bulk action's
    # onclick is allowed where it is declared: admin/actions.py).
    csp.allow_handler("return faHelpers.safeConfirm('Are you sure you want to delete this "
                      "record?');")
    guard.init_app(app, set(app.blueprints) - before)  # the panel's views, a blueprint each
