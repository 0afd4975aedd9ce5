"""The JSON API under /api/v1 (SPEC §11), authenticated by `Authorization: Bearer <key>`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from service import events, lifecycle
from service.core.addresses import normalise_email
from service.core.db import utcnow
from service.core.errors import DomainError, InvalidInput, NotFound
from service.core.models import (
    Activity,
    Handoff,
    Lead,
    Rep,
    StageChange,
    Team,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from service.core.runtime import runtime
from service.core.statuses import WebhookStatus
from service.events import payloads
from service.events.payloads import handoff_json
from service.handoffs import reps
from service.handoffs.actions import promote_lead
from service.intake.event import lead_fields
from service.intake.keys import api_key
from service.leads.scoring import Policy
from service.lifecycle import Stage
from service.webhooks import endpoints

from . import bodies, cursors
from .openapi import document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_PAGE = 100
MAX_OFFSET = 10**9
ID = "<int(max=9223372036854775807):{}>"
ADMIN_ONLY = ("api.webhook_endpoints", "api.webhook_endpoint", "api.create_webhook_endpoint",
              "api.update_webhook_endpoint", "api.delete_webhook_endpoint",
              "api.rotate_webhook_secret", "api.test_webhook_endpoint",
              "api.webhook_deliveries", "api.retry_webhook_delivery")


def error(status: int, code: str, message: str):
    return jsonify(error={"code": code, "message": message}), status


@bp.errorhandler(DomainError)
def domain_error(exc: DomainError):
    return error(exc.status, exc.code, exc.message)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    return error(exc.code or 500, "http_error", exc.description or exc.name)


@bp.before_request
def authenticate():
    if request.endpoint == "api.openapi":
        return None
    auth = request.headers.get("Authorization", "")
    scheme, _, key = auth.partition(" ")
    found = api_key(key.strip()) if scheme.lower() == "bearer" else None
    if found is None:
        return error(401, "unauthorized", "send Authorization: Bearer <api key>")
    name, owner = found
    g.api_actor, g.api_owner = f"api:{name}", owner
    if request.endpoint in ADMIN_ONLY and not is_admin(owner):
        return error(403, "forbidden", f"webhook endpoints are managed by admins: the owner of "
                     f"this key ({owner}) is not an active admin user")
    return None


def is_admin(email: str) -> bool:
    return User.select().where(User.email == email, User.role == "admin",
                               User.active).exists()


@bp.get("/openapi.json")
def openapi():
    return jsonify(document())


def body() -> dict:
    data = bodies.json_body()
    if not isinstance(data, dict):
        raise InvalidInput("send a JSON object")
    return data


def page() -> tuple[int, int]:
    try:
        limit = page_size()
        offset = int(request.args.get("offset", 0))
    except ValueError:
        raise InvalidInput("limit and offset must be whole numbers") from None
    if not (1 <= limit <= MAX_PAGE and 0 <= offset <= MAX_OFFSET):
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE} and offset 0 to {MAX_OFFSET}")
    return limit, offset


def page_size() -> int:
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise InvalidInput("limit must be a whole number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
    return limit


def choice(name: str, allowed) -> str | None:
    """A query argument that must be one of the allowed values, or absent."""
    value = request.args.get(name)
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}")
    return value


def moment(name: str) -> datetime | None:
    """An ISO 8601 time query argument; one without a zone is UTC."""
    value = request.args.get(name)
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time, say 2026-01-31T09:00:00Z") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def lead_json(lead: Lead, *, detail: bool = False) -> dict:
    """The lead as events carry it (fields, stage, score, owner); with detail, its
    activities, handoffs and stage history too."""
    data = payloads.lead_json(lead, policy=Policy.from_settings(runtime.settings), now=utcnow(),
                              owner=payloads.owners([lead.id]).get(lead.id))
    if detail:
        data["activities"] = [
            {"id": a.id, "type": a.type, "source": a.source,
             "occurred_at": a.occurred_at.isoformat(), "properties": a.properties}
            for a in lead.activities.order_by(Activity.occurred_at.desc()).limit(200)]
        data["handoffs"] = [handoff_json(h) for h in lead.handoffs.order_by(Handoff.id)]
        data["stage_history"] = [
            {"from": c.from_stage, "to": c.to_stage, "at": c.at.isoformat(), "actor": c.actor,
             "reason": c.reason} for c in lead.stage_changes.order_by(StageChange.id)]
    return data


def rep_json(rep: Rep) -> dict:
    return {"id": rep.id, "email": rep.email, "name": rep.name,
            "team": rep.team.name if rep.team else None, "manager_email": rep.manager_email,
            "time_zone": rep.time_zone, "weight": rep.weight, "capacity": rep.capacity,
            "active": rep.active, "out_of_office": rep.out_of_office,
            "away_from": rep.away_from.isoformat() if rep.away_from else None,
            "away_until": rep.away_until.isoformat() if rep.away_until else None}


def team_json(team: Team) -> dict:
    return {"id": team.id, "name": team.name, "manager_email": team.manager_email,
            "fallback_email": team.fallback_email}


@bp.get("/leads")
def leads():
    query = Lead.select()
    stage = choice("stage", [s.value for s in Stage])
    if stage is not None:
        query = query.where(Lead.stage == stage)
    if "cursor" in request.args or "changed_since" in request.args:
        return changed_leads(query)
    limit, offset = page()
    if "email" in request.args:
        try:
            query = query.where(Lead.email == normalise_email(request.args["email"]))
        except InvalidInput:
            return jsonify(leads=[])
    return jsonify(leads=[lead_json(lead, detail=True) for lead in
                          query.order_by(Lead.id).limit(limit).offset(offset)])


def changed_leads(query):
    """Leads changed at or after changed_since, in (updated_at, id) order after the cursor,
    up to the settled time: every change is seen at least once, in its newest state."""
    limit, since = page_size(), moment("changed_since")
    if since is not None:
        query = query.where(Lead.updated_at >= since)
    if request.args.get("cursor"):
        at, lead_id = cursors.read_lead_cursor(request.args["cursor"])
        query = query.where((Lead.updated_at > at) |
                            ((Lead.updated_at == at) & (Lead.id > lead_id)))
    bound = cursors.settled_time(Lead, timedelta(
        seconds=runtime.settings.web.lead_poll_settle_seconds))
    found = [] if bound is None else list(
        query.where(Lead.updated_at <= bound).order_by(Lead.updated_at, Lead.id).limit(limit))
    if found:
        cursor = cursors.lead_cursor(found[-1].updated_at, found[-1].id)
    else:
        cursor = request.args.get("cursor") or cursors.lead_cursor(
            since or datetime.min.replace(tzinfo=UTC), 0)
    return jsonify(leads=[lead_json(lead, detail=True) for lead in found], next_cursor=cursor)


@bp.get("/leads/<int(max=9223372036854775807):lead_id>")
def lead(lead_id: int):
    found = Lead.get_or_none(Lead.id == lead_id)
    if found is None:
        raise NotFound(f"lead {lead_id} not found")
    return jsonify(lead_json(found, detail=True))


@bp.post("/leads/<int(max=9223372036854775807):lead_id>/promote")
def promote(lead_id: int):
    data = body()
    rep_id = None
    if data.get("rep") is not None:
        rep = Rep.get_or_none(Rep.email == normalise_email(data["rep"]))
        if rep is None:
            raise InvalidInput(f"no rep with email {data['rep']}")
        rep_id = rep.id
    note = data.get("note") or ""
    if not isinstance(note, str):
        raise InvalidInput("note must be text")
    handoff = promote_lead(lead_id, rep_id=rep_id, note=note[:5000], actor=g.api_actor,
                           promoter=g.api_owner, settings=runtime.settings,
                           now=utcnow())
    return jsonify(handoff_json(handoff)), 201


@bp.get("/handoffs")
def handoffs():
    limit, offset = page()
    query = Handoff.select().order_by(Handoff.id)
    status = request.args.get("status")
    if status is not None:
        if status not in Handoff.STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(Handoff.STATUSES)}")
        query = query.where(Handoff.status == status)
    return jsonify(handoffs=[handoff_json(h) for h in query.limit(limit).offset(offset)])


@bp.get("/handoffs/<int(max=9223372036854775807):handoff_id>")
def handoff(handoff_id: int):
    found = Handoff.get_or_none(Handoff.id == handoff_id)
    if found is None:
        raise NotFound(f"handoff {handoff_id} not found")
    return jsonify(handoff_json(found))


@bp.post("/sqls")
def outbound_sql():
    data = body()
    rep = Rep.get_or_none(Rep.email == normalise_email(data.get("rep")))
    if rep is None:
        raise InvalidInput(f"no rep with email {data.get('rep')}")
    fields, bant = data.get("lead") or {}, data.get("bant") or {}
    notes = data.get("notes") or ""
    if not isinstance(fields, dict) or not isinstance(bant, dict) or not isinstance(notes, str):
        raise InvalidInput("lead and bant must be objects, notes text")
    handoff = lifecycle.register_outbound(
        normalise_email(data.get("email")), fields=lead_fields(fields), rep_id=rep.id,
        bant=bant, notes=notes[:5000], actor=g.api_actor, now=utcnow())
    return jsonify(handoff_json(handoff)), 201


@bp.get("/reps")
def list_reps():
    limit, offset = page()
    return jsonify(reps=[rep_json(r) for r in
                         Rep.select().order_by(Rep.id).limit(limit).offset(offset)])


@bp.post("/reps")
def save_rep():
    rep, created = reps.upsert_rep(body(), actor=g.api_actor, now=utcnow())
    return jsonify(rep_json(rep)), 201 if created else 200


@bp.get("/teams")
def list_teams():
    limit, offset = page()
    return jsonify(teams=[team_json(t) for t in
                          Team.select().order_by(Team.id).limit(limit).offset(offset)])


@bp.post("/teams")
def save_team():
    team, created = reps.upsert_team(body())
    return jsonify(team_json(team)), 201 if created else 200


@bp.get("/events")
def event_log():
    """The event log after the cursor, in id order, up to the settled id (see cursors)."""
    limit, after = page_size(), cursors.read_event_cursor(request.args.get("after"))
    query = WebhookEvent.select().where(WebhookEvent.id > after,
                                        WebhookEvent.type != events.TEST_EVENT)
    event_type = choice("type", events.EVENT_TYPES)
    if event_type is not None:
        query = query.where(WebhookEvent.type == event_type)
    settled = cursors.settled_id(WebhookEvent)
    if settled is not None:
        query = query.where(WebhookEvent.id <= settled)
    found = list(query.order_by(WebhookEvent.id).limit(limit))
    return jsonify(events=[events.envelope(event) for event in found],
                   next_cursor=cursors.event_cursor(found[-1].id if found else after))


def when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def endpoint_json(endpoint: WebhookEndpoint) -> dict:
    """An endpoint without its secrets."""
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description,
            "event_types": endpoint.event_types, "format": endpoint.format,
            "active": endpoint.active, "failing_since": when(endpoint.failing_since),
            "disabled_at": when(endpoint.disabled_at),
            "disabled_reason": endpoint.disabled_reason,
            "previous_secret_valid_until": when(endpoint.previous_secret_until),
            "created_by": endpoint.created_by, "created_at": when(endpoint.created_at),
            "updated_at": when(endpoint.updated_at)}


def delivery_json(delivery: WebhookDelivery) -> dict:
    event = delivery.event
    return {"id": delivery.id, "endpoint_id": delivery.endpoint_id,
            "event_id": event.public_id, "event_type": event.type,
            "status": delivery.status, "attempts": delivery.attempts,
            "last_status_code": delivery.last_status_code,
            "last_attempt_at": when(delivery.last_attempt_at),
            "next_attempt_at": when(delivery.next_attempt_at),
            "last_error": delivery.last_error, "response_excerpt": delivery.response_excerpt,
            "delivered_at": when(delivery.delivered_at),
            "created_at": when(delivery.created_at)}


@bp.get("/webhook-endpoints")
def webhook_endpoints():
    limit, offset = page()
    found = WebhookEndpoint.select().order_by(WebhookEndpoint.id).limit(limit).offset(offset)
    return jsonify(webhook_endpoints=[endpoint_json(endpoint) for endpoint in found])


@bp.post("/webhook-endpoints")
def create_webhook_endpoint():
    endpoint, secret = endpoints.create(body(), actor=g.api_actor, settings=runtime.settings,
                                        now=utcnow())
    return jsonify({**endpoint_json(endpoint), "secret": secret}), 201


@bp.get(f"/webhook-endpoints/{ID.format('endpoint_id')}")
def webhook_endpoint(endpoint_id: int):
    return jsonify(endpoint_json(endpoints.get(endpoint_id)))


@bp.patch(f"/webhook-endpoints/{ID.format('endpoint_id')}")
def update_webhook_endpoint(endpoint_id: int):
    endpoint = endpoints.update(endpoint_id, body(), actor=g.api_actor,
                                settings=runtime.settings, now=utcnow())
    return jsonify(endpoint_json(endpoint))


@bp.delete(f"/webhook-endpoints/{ID.format('endpoint_id')}")
def delete_webhook_endpoint(endpoint_id: int):
    endpoints.delete(endpoint_id, actor=g.api_actor, now=utcnow())
    return "", 204


@bp.post(f"/webhook-endpoints/{ID.format('endpoint_id')}/rotate-secret")
def rotate_webhook_secret(endpoint_id: int):
    endpoint, secret = endpoints.rotate_secret(endpoint_id, actor=g.api_actor,
                                               settings=runtime.settings, now=utcnow())
    return jsonify({**endpoint_json(endpoint), "secret": secret})


@bp.post(f"/webhook-endpoints/{ID.format('endpoint_id')}/test")
def test_webhook_endpoint(endpoint_id: int):
    delivery = endpoints.send_test_event(endpoint_id, actor=g.api_actor, now=utcnow())
    return jsonify(delivery_json(delivery)), 202


@bp.get(f"/webhook-endpoints/{ID.format('endpoint_id')}/deliveries")
def webhook_deliveries(endpoint_id: int):
    """The endpoint's delivery log, newest first; next_cursor is null on the last page."""
    endpoints.get(endpoint_id)
    limit, before = page_size(), request.args.get("after")
    query = WebhookDelivery.select(WebhookDelivery, WebhookEvent).join(WebhookEvent).where(
        WebhookDelivery.endpoint == endpoint_id)
    status = choice("status", [s.value for s in WebhookStatus])
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if before is not None:
        query = query.where(WebhookDelivery.id < cursors.read_delivery_cursor(before))
    found = list(query.order_by(WebhookDelivery.id.desc()).limit(limit))
    last = cursors.delivery_cursor(found[-1].id) if len(found) == limit else None
    return jsonify(deliveries=[delivery_json(delivery) for delivery in found], next_cursor=last)


@bp.post(f"/webhook-deliveries/{ID.format('delivery_id')}/retry")
def retry_webhook_delivery(delivery_id: int):
    delivery = endpoints.retry_now(delivery_id, actor=g.api_actor, now=utcnow())
    return jsonify(delivery_json(delivery)), 202
