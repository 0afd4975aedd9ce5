"""The OpenAPI 3.0 document of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from service import events
from service.core.models import WebhookEndpoint
from service.core.statuses import WebhookStatus
from service.lifecycle import BANT, HandoffStatus, Stage

HANDOFF_STATUSES = [status.value for status in HandoffStatus]
STAGES = [stage.value for stage in Stage]


def _text(nullable: bool = False) -> dict:
    return {"type": "string", "nullable": True} if nullable else {"type": "string"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    meaning = {400: "Bad input", 401: "Missing or wrong API key",
               403: "The key's owner is not an active admin user (webhook endpoints are "
                    "managed by admins)", 404: "Not found",
               409: "Not allowed in the lead's current stage"}
    return {str(s): _json(_ref("Error"), meaning[s]) for s in statuses}


TIME = {"type": "string", "format": "date-time"}
BANT_SCHEMA = {"type": "object", "properties": {
    name: {"type": "string", "enum": list(values) + [""]} for name, values in BANT.items()}}
LEAD_FIELDS = {name: _text() for name in (
    "first_name", "last_name", "company", "title", "phone", "country", "company_size",
    "industry", "utm_source", "utm_campaign", "source")}
LIMIT = {"name": "limit", "in": "query",
         "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}}
PAGING = [
    LIMIT,
    {"name": "offset", "in": "query",
     "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}},
]
CURSOR = {"type": "string", "description": "Opaque: pass back next_cursor as it came."}
WHEN = {**TIME, "nullable": True}
EVENT_TYPE = {"type": "string", "enum": list(events.EVENT_TYPES)}
ENDPOINT_FIELDS = {
    "url": {"type": "string", "description": "https, resolving to public addresses"},
    "description": _text(), "format": {"type": "string", "enum": list(WebhookEndpoint.FORMATS)},
    "event_types": {"type": "array", "items": EVENT_TYPE,
                    "description": "The types sent; empty for all"},
    "active": {"type": "boolean"}}
ENDPOINT = {
    "id": {"type": "integer"}, **ENDPOINT_FIELDS, "failing_since": WHEN, "disabled_at": WHEN,
    "disabled_reason": _text(), "previous_secret_valid_until": WHEN, "created_by": _text(),
    "created_at": TIME, "updated_at": TIME}
SECRET = {"type": "string", "pattern": "^whsec_",
          "description": "Shown only in this answer: keep it to verify signatures"}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": _text(), "message": _text()}}}},
    "Handoff": {"type": "object", "required": ["id", "lead_id", "rep", "status"], "properties": {
        "id": {"type": "integer"}, "lead_id": {"type": "integer"}, "rep": _text(),
        "status": {"type": "string", "enum": HANDOFF_STATUSES},
        "origin": {"type": "string", "enum": ["inbound", "outbound"]},
        "promoted_by": _text(), "promoted_at": TIME, "note": _text(),
        "definition_version": {"type": "integer", "nullable": True},
        "due_at": TIME, "decided_at": {**TIME, "nullable": True}, "decided_by": _text(),
        "sla_met": {"type": "boolean", "nullable": True}, "bant": BANT_SCHEMA,
        "reason": _text(), "outcome": _text(), "notes": _text(),
        "replaces": {"type": "integer", "nullable": True}}},
    "Lead": {"type": "object", "required": ["id", "email", "stage", "score"], "properties": {
        "id": {"type": "integer"}, "email": _text(),
        "stage": {"type": "string", "enum": STAGES},
        "score": {"type": "number"}, "created_at": TIME, "updated_at": WHEN, **LEAD_FIELDS,
        "owner": {"type": "object", "nullable": True,
                  "description": "The rep of the lead's pending or accepted handoff.",
                  "properties": {"id": {"type": "integer"}, "email": _text(),
                                 "name": _text()}},
        "activities": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "integer"}, "type": _text(), "source": _text(),
            "occurred_at": TIME, "properties": {"type": "object"}}}},
        "handoffs": {"type": "array", "items": _ref("Handoff")},
        "stage_history": {"type": "array", "items": {"type": "object", "properties": {
            "from": _text(nullable=True), "to": _text(), "at": TIME, "actor": _text(),
            "reason": _text()}}}}},
    "Rep": {"type": "object", "required": ["id", "email"], "properties": {
        "id": {"type": "integer"}, "email": _text(), "name": _text(),
        "team": _text(nullable=True), "manager_email": _text(), "time_zone": _text(),
        "weight": {"type": "integer"}, "capacity": {"type": "integer"},
        "active": {"type": "boolean"}, "out_of_office": {"type": "boolean"},
        "away_from": {"type": "string", "format": "date", "nullable": True},
        "away_until": {"type": "string", "format": "date", "nullable": True}}},
    "RepInput": {"type": "object", "required": ["email"], "properties": {
        "email": {"type": "string", "format": "email"}, "name": _text(),
        "team": _text(nullable=True), "manager_email": _text(), "time_zone": _text(),
        "weight": {"type": "integer", "minimum": 0, "maximum": 1000},
        "capacity": {"type": "integer", "minimum": 0, "maximum": 1000},
        "active": {"type": "boolean"}, "out_of_office": {"type": "boolean"},
        "away_from": {"type": "string", "format": "date", "nullable": True},
        "away_until": {"type": "string", "format": "date", "nullable": True}}},
    "Team": {"type": "object", "required": ["id", "name"], "properties": {
        "id": {"type": "integer"}, "name": _text(), "manager_email": _text(),
        "fallback_email": _text()}},
    "TeamInput": {"type": "object", "required": ["name"], "properties": {
        "name": _text(), "manager_email": _text(), "fallback_email": _text()}},
    "EventType": EVENT_TYPE,
    "Event": {"type": "object", "required": ["id", "type", "timestamp", "sequence", "data"],
              "description": "The body of a standard webhook delivery, and an item of /events",
              "properties": {
                  "id": {"type": "string", "description": "msg_…, the webhook-id header"},
                  "type": _ref("EventType"), "timestamp": TIME,
                  "sequence": {"type": "integer", "description": "The lead's own event count"},
                  "data": {"type": "object", "description": "lead (and handoff)"}}},
    "EventPage": {"type": "object", "required": ["events", "next_cursor"], "properties": {
        "events": {"type": "array", "items": _ref("Event")}, "next_cursor": CURSOR}},
    "LeadPage": {"type": "object", "required": ["leads"], "properties": {
        "leads": {"type": "array", "items": _ref("Lead")},
        "next_cursor": {**CURSOR, "description": "With changed_since or cursor only"}}},
    "WebhookEndpoint": {"type": "object", "required": list(ENDPOINT), "properties": ENDPOINT},
    "WebhookEndpointWithSecret": {"type": "object", "required": [*ENDPOINT, "secret"],
                                  "properties": {**ENDPOINT, "secret": SECRET}},
    "WebhookEndpointInput": {"type": "object", "required": ["url"],
                             "properties": ENDPOINT_FIELDS},
    "WebhookEndpointChange": {"type": "object", "properties": ENDPOINT_FIELDS},
    "WebhookDelivery": {"type": "object", "required": ["id", "event_id", "status"], "properties": {
        "id": {"type": "integer"}, "endpoint_id": {"type": "integer"},
        "event_id": _text(), "event_type": _text(),
        "status": {"type": "string", "enum": [s.value for s in WebhookStatus]},
        "attempts": {"type": "integer"},
        "last_status_code": {"type": "integer", "nullable": True},
        "last_attempt_at": WHEN, "next_attempt_at": WHEN, "last_error": _text(),
        "response_excerpt": _text(), "delivered_at": WHEN, "created_at": TIME}},
    "DeliveryPage": {"type": "object", "required": ["deliveries", "next_cursor"], "properties": {
        "deliveries": {"type": "array", "items": _ref("WebhookDelivery")},
        "next_cursor": {**CURSOR, "nullable": True,
                        "description": "Older deliveries; null on the last page"}}},
}


def _get(summary: str, ok: dict, *errors: int, parameters=None) -> dict:
    return {"get": {"summary": summary, "parameters": parameters or [],
                    "responses": {"200": ok, **_errors(401, *errors)}}}


def _post(summary: str, request: dict, responses: dict, *errors: int) -> dict:
    return {"summary": summary, "requestBody": {"required": True, "content": {
        "application/json": {"schema": request}}},
        "responses": {**responses, **_errors(400, 401, *errors)}}


def _operation(summary: str, responses: dict, *errors: int, parameters=None,
               request: dict | None = None) -> dict:
    """An admin-only operation (webhook endpoints): 401 and 403 besides its own errors."""
    found = {"summary": summary, "parameters": parameters or [],
             "responses": {**responses, **_errors(401, 403, *errors)}}
    if request is not None:
        found["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": request}}}
    return found


def _query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _list(key: str, item: str) -> dict:
    return _json({"type": "object", "required": [key], "properties": {
        key: {"type": "array", "items": _ref(item)}}}, f"A page of {key}")


def document() -> dict:
    id_param = {"name": "{}", "in": "path", "required": True,
                "schema": {"type": "integer", "maximum": 2**63 - 1}}
    lead_id = {**id_param, "name": "lead_id"}
    handoff_id = {**id_param, "name": "handoff_id"}
    endpoint_id = {**id_param, "name": "endpoint_id"}
    delivery_id = {**id_param, "name": "delivery_id"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Leadbridge API", "version": "1.0",
                 "description": DESCRIPTION},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": SCHEMAS},
        "paths": {
            "/leads": _get(
                "Leads, optionally the one with an email or those in a stage. With "
                "changed_since or cursor: the leads changed since, in (updated_at, id) order, "
                "paged by next_cursor (at least once, newest state)",
                _json(_ref("LeadPage"), "A page of leads"), 400,
                parameters=[_query("email", {"type": "string"}),
                            _query("stage", {"type": "string", "enum": STAGES}),
                            _query("changed_since", TIME, "Leads changed at or after this"),
                            _query("cursor", CURSOR), *PAGING]),
            "/leads/{lead_id}": _get("A lead with activities, handoffs and stage history",
                                     _json(_ref("Lead"), "The lead"), 404,
                                     parameters=[lead_id]),
            "/leads/{lead_id}/promote": {"post": {**_post(
                "Promote to MQL; assignment rules pick the rep when rep is null",
                {"type": "object", "properties": {
                    "rep": {"type": "string", "nullable": True}, "note": _text()}},
                {"201": _json(_ref("Handoff"), "The new pending handoff")}, 404, 409),
                "parameters": [lead_id]}},
            "/handoffs": _get("Handoffs, optionally by status", _list("handoffs", "Handoff"),
                              400, parameters=[{"name": "status", "in": "query", "schema": {
                                  "type": "string",
                                  "enum": HANDOFF_STATUSES}},
                                  *PAGING]),
            "/handoffs/{handoff_id}": _get("A handoff", _json(_ref("Handoff"), "The handoff"),
                                           404, parameters=[handoff_id]),
            "/sqls": {"post": _post(
                "Register an outbound SQL (lead fields, rep, BANT)",
                {"type": "object", "required": ["email", "rep", "bant"], "properties": {
                    "email": {"type": "string", "format": "email"},
                    "rep": {"type": "string", "format": "email"},
                    "lead": {"type": "object", "properties": LEAD_FIELDS},
                    "bant": BANT_SCHEMA, "notes": _text()}},
                {"201": _json(_ref("Handoff"), "The accepted outbound handoff")}, 409)},
            "/reps": {**_get("Reps", _list("reps", "Rep"), 400, parameters=PAGING),
                      "post": _post("Create or update a rep by email", _ref("RepInput"), {
                          "200": _json(_ref("Rep"), "Updated"),
                          "201": _json(_ref("Rep"), "Created")})},
            "/teams": {**_get("Teams", _list("teams", "Team"), 400, parameters=PAGING),
                       "post": _post("Create or update a team by name", _ref("TeamInput"), {
                           "200": _json(_ref("Team"), "Updated"),
                           "201": _json(_ref("Team"), "Created")})},
            **_webhook_paths(endpoint_id, delivery_id),
            "/events": _get(
                "The event log after a cursor, oldest first (never the test events)",
                _json(_ref("EventPage"), "A page of events and the cursor to poll next"), 400,
                parameters=[_query("after", CURSOR, "next_cursor of the previous page; "
                                   "from the start without"),
                            _query("type", _ref("EventType")), LIMIT]),
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": _json({"type": "object"},
                                                                 "OpenAPI 3.0")}}},
            "/docs": {"get": {"summary": "Readable docs of this document (Swagger UI)",
                              "security": [], "responses": {"200": {
                                  "description": "An HTML page",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        },
    }


def _webhook_paths(endpoint_id: dict, delivery_id: dict) -> dict:
    endpoint = _json(_ref("WebhookEndpoint"), "The endpoint")
    delivery = _json(_ref("WebhookDelivery"), "The delivery, queued")
    return {
        "/webhook-endpoints": {
            "get": _operation("Webhook endpoints", {"200": _list(
                "webhook_endpoints", "WebhookEndpoint")}, 400, parameters=PAGING),
            "post": _operation("Create an endpoint; the answer holds its secret, once", {
                "201": _json(_ref("WebhookEndpointWithSecret"), "Created")}, 400,
                request=_ref("WebhookEndpointInput"))},
        "/webhook-endpoints/{endpoint_id}": {
            "parameters": [endpoint_id],
            "get": _operation("An endpoint (never its secret)", {"200": endpoint}, 404),
            "patch": _operation("Change an endpoint; active true again clears its disabled "
                                "state", {"200": endpoint}, 400, 404,
                                request=_ref("WebhookEndpointChange")),
            "delete": _operation("Delete an endpoint and its own deliveries", {
                "204": {"description": "Deleted"}}, 404)},
        "/webhook-endpoints/{endpoint_id}/rotate-secret": {"post": _operation(
            "A new secret, shown once; the old one also signs until "
            "previous_secret_valid_until", {"200": _json(_ref("WebhookEndpointWithSecret"),
                                                          "The new secret")}, 404,
            parameters=[endpoint_id])},
        "/webhook-endpoints/{endpoint_id}/test": {"post": _operation(
            "Send a webhook.test event to this endpoint", {"202": delivery}, 404,
            parameters=[endpoint_id])},
        "/webhook-endpoints/{endpoint_id}/deliveries": {"get": _operation(
            "The endpoint's delivery log, newest first",
            {"200": _json(_ref("DeliveryPage"), "A page of deliveries")}, 400, 404,
            parameters=[endpoint_id, _query("status", {"type": "string", "enum": [
                s.value for s in WebhookStatus]}), _query("after", CURSOR), LIMIT])},
        "/webhook-deliveries/{delivery_id}/retry": {"post": _operation(
            "Try a delivery again now, with a fresh set of attempts", {"202": delivery},
            400, 404, parameters=[delivery_id])},
    }


DESCRIPTION = """Leads, handoffs, outbound SQLs, reps and teams; webhook endpoints and the
event log.

Every call but this document and /docs sends `Authorization: Bearer <API key>`; the key acts
for its owner. Webhook endpoints and deliveries are managed by admins: a key whose owner is
not an active admin user gets 403.

Polling: `GET /events` answers `next_cursor`; pass it as `after` next time. Each event comes
exactly once, in order (an event shows once the transaction that wrote it has ended).
`GET /leads?changed_since=…` pages by `cursor` in (updated_at, id) order: each change shows at
least once, in the lead's newest state, a few seconds after it is made; a lead changed again
after it was handed out comes again."""
