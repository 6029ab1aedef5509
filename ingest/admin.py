"""The admin API (`/api/...`): bearer-token protected, closed when no token is configured."""
from __future__ import annotations


from flask import Blueprint, current_app, jsonify, request

from ingest.errors import ApiError
from ingest.event_admin import (
    BadFilter, EventFilter, event_detail, event_summary, list_events, purged_message, replay_events, replay_matching,
)
from ingest.providers.base import secrets_equal
from ingest.runtime import Runtime
from ingest.schema import Event

admin = Blueprint("admin", __name__, url_prefix="/api")


def _runtime() -> Runtime:
    return current_app.extensions["crm_ingest"]


@admin.before_request
def require_admin_token():
    token = _runtime().settings.admin_token
    if token is None:
        raise ApiError(403, "admin_disabled", "the admin API is closed: set admin_token or CRM_INGEST_ADMIN_TOKEN")
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer ") or not secrets_equal(given[7:].strip(), token.get_secret_value()):
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <admin_token>")


def _filter(values) -> EventFilter:
    try:
        return EventFilter.parse(values.get("status"), values.get("source"), values.get("provider"),
                                 values.get("since"))
    except BadFilter as exc:
        raise ApiError(400, "bad_filter", str(exc)) from None


@admin.get("/events")
def events_index():
    event_filter = _filter(request.args)
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        raise ApiError(400, "bad_filter", "limit must be a whole number") from None
    with _runtime().sessions() as session:
        events = list_events(session, event_filter, limit)
        return jsonify(events=[event_summary(event) for event in events])


@admin.get("/events/<int:event_id>")
def events_show(event_id: int):
    with _runtime().sessions() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise ApiError(404, "not_found", f"no event {event_id}")
        return jsonify(event_detail(event))


@admin.post("/events/<int:event_id>/replay")
def events_replay(event_id: int):
    runtime = _runtime()
    with runtime.sessions() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise ApiError(404, "not_found", f"no event {event_id}")
        if event.purged_at is not None:
            raise ApiError(409, "purged", purged_message(event))
    if not replay_events(runtime, [event_id]):
        raise ApiError(409, "in_flight", f"event {event_id} is {event.status}; replay it once it has finished")
    return jsonify(replayed=[event_id]), 202


@admin.post("/replay")
def replay_by_filter():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", 'send a JSON object such as {"status": "dead", "dry_run": true}')
    if not any(body.get(key) for key in ("status", "source", "provider", "since")):
        raise ApiError(400, "bad_filter", "name at least one of status, source, provider, since")
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "bad_request", "dry_run must be true or false")
    return jsonify(replay_matching(_runtime(), _filter(body), dry_run))
