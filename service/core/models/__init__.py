"""Tables, one module per part of the domain; import them from here. States change only
through service.lifecycle (the words for handoff and enrollment states are in
core/statuses.py, lead stages in lifecycle/stages.py)."""

from service.core.models.content import ContentVersion
from service.core.models.conversations import HandoffMessage, InboundEmail
from service.core.models.fields import JSONField, new_public_id, new_session_token
from service.core.models.handoffs import AssignmentCursor, Handoff, Rep, Team
from service.core.models.intake import (
    AnonymousActivity,
    Delivery,
    Identity,
    InboundEvent,
    IntakeStat,
    IntegrationKey,
)
from service.core.models.leads import Activity, Definition, Lead, LeadMerge, StageChange
from service.core.models.mail import (
    DigestLog,
    EmailClick,
    EmailEvent,
    Enrollment,
    OutboxEmail,
    Suppression,
)
from service.core.models.system import (
    AuditEvent,
    DirtyDay,
    RateCount,
    Rollup,
    SchemaVersion,
    User,
)
from service.core.models.views import SavedView
from service.core.models.webhooks import WebhookDelivery, WebhookEndpoint, WebhookEvent

__all__ = ["Activity", "AnonymousActivity", "AssignmentCursor", "AuditEvent", "ContentVersion",
           "Definition",
           "Delivery", "DigestLog", "DirtyDay", "EmailClick", "EmailEvent", "Enrollment",
           "Handoff", "HandoffMessage", "Identity", "InboundEmail", "InboundEvent", "IntakeStat",
           "IntegrationKey", "JSONField", "Lead", "LeadMerge", "OutboxEmail", "RateCount", "Rep",
           "Rollup", "SavedView", "SchemaVersion", "StageChange", "Suppression", "Team", "User",
           "WebhookDelivery", "WebhookEndpoint", "WebhookEvent",
           "new_public_id", "new_session_token"]
