"""The OpenAPI 3.0 document of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from service.lifecycle import BANT, HandoffStatus, Stage

HANDOFF_STATUSES = [status.value for status in HandoffStatus]


def _text(nullable: bool = False) -> dict:
    return {"type": "string", "nullable": True} if nullable else {"type": "string"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    meaning = {400: "Bad input", 401: "Missing or wrong API key", 404: "Not found",
               409: "Not allowed in the lead's current stage"}
    return {str(s): _json(_ref("Error"), meaning[s]) for s in statuses}


TIME = {"type": "string", "format": "date-time"}
BANT_SCHEMA = {"type": "object", "properties": {
    name: {"type": "string", "enum": list(values) + [""]} for name, values in BANT.items()}}
LEAD_FIELDS = {name: _text() for name in (
    "first_name", "last_name", "company", "title", "phone", "country", "company_size",
    "industry", "utm_source", "source")}
PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "offset", "in": "query",
     "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}},
]

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
        "stage": {"type": "string", "enum": [s.value for s in Stage]},
        "score": {"type": "number"}, "created_at": TIME, **LEAD_FIELDS,
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
}


def _get(summary: str, ok: dict, *errors: int, parameters=None) -> dict:
    return {"get": {"summary": summary, "parameters": parameters or [],
                    "responses": {"200": ok, **_errors(401, *errors)}}}


def _post(summary: str, request: dict, responses: dict, *errors: int) -> dict:
    return {"summary": summary, "requestBody": {"required": True, "content": {
        "application/json": {"schema": request}}},
        "responses": {**responses, **_errors(400, 401, *errors)}}


def _list(key: str, item: str) -> dict:
    return _json({"type": "object", "required": [key], "properties": {
        key: {"type": "array", "items": _ref(item)}}}, f"A page of {key}")


def document() -> dict:
    id_param = {"name": "{}", "in": "path", "required": True, "schema": {"type": "integer"}}
    lead_id = {**id_param, "name": "lead_id"}
    handoff_id = {**id_param, "name": "handoff_id"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Leadbridge API", "version": "1.0",
                 "description": "Leads, handoffs, outbound SQLs, reps and teams."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": SCHEMAS},
        "paths": {
            "/leads": _get("Leads, optionally the one with an email", _list("leads", "Lead"), 400,
                           parameters=[{"name": "email", "in": "query",
                                        "schema": {"type": "string"}}, *PAGING]),
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
        },
    }
