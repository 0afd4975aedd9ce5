"""The JSON API under /api/v1 (SPEC §11), authenticated by `Authorization: Bearer <key>`."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from service import lifecycle
from service.core.addresses import normalise_email
from service.core.db import utcnow
from service.core.errors import DomainError, InvalidInput, NotFound
from service.core.models import Activity, Handoff, Lead, Rep, StageChange, Team
from service.core.runtime import runtime
from service.handoffs import reps
from service.handoffs.actions import promote_lead
from service.intake.event import lead_fields
from service.intake.keys import api_key
from service.leads.scoring import Policy

from . import bodies
from .openapi import document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_PAGE = 100
MAX_OFFSET = 10**9


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
    return None


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
        limit = int(request.args.get("limit", 50))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        raise InvalidInput("limit and offset must be whole numbers") from None
    if not (1 <= limit <= MAX_PAGE and 0 <= offset <= MAX_OFFSET):
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE} and offset 0 to {MAX_OFFSET}")
    return limit, offset


def lead_json(lead: Lead, *, detail: bool = False) -> dict:
    policy = Policy.from_settings(runtime.settings)
    data = {"id": lead.id, "email": lead.email, "stage": lead.stage,
            "score": round(policy.score(lead.score_log, utcnow()), 2),
            "created_at": lead.created_at.isoformat(),
            **{name: getattr(lead, name) for name in Lead.EDITABLE}, "source": lead.source}
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


def handoff_json(h: Handoff) -> dict:
    def when(moment):
        return moment.isoformat() if moment else None

    return {"id": h.id, "lead_id": h.lead_id, "rep": h.rep.email, "status": h.status,
            "origin": h.origin, "promoted_by": h.promoted_by, "promoted_at": when(h.promoted_at),
            "note": h.note, "definition_version": h.definition.version if h.definition else None,
            "due_at": when(h.due_at), "decided_at": when(h.decided_at),
            "decided_by": h.decided_by, "sla_met": h.sla_met,
            "bant": {"budget": h.budget, "authority": h.authority, "need": h.need,
                     "timeline": h.timeline},
            "reason": h.reason, "outcome": h.outcome, "notes": h.notes,
            "replaces": h.replaces_id}


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
    limit, offset = page()
    query = Lead.select().order_by(Lead.id)
    if "email" in request.args:
        try:
            query = query.where(Lead.email == normalise_email(request.args["email"]))
        except InvalidInput:
            return jsonify(leads=[])
    return jsonify(leads=[lead_json(lead, detail=True) for lead in
                          query.limit(limit).offset(offset)])


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
    rep, created = reps.upsert_rep(body())
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
