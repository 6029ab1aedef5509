"""The admin API (`/api/...`): bearer-token protected, closed when no token is configured."""
from __future__ import annotations


from flask import Blueprint, current_app, jsonify, request

from ingest.admin_params import (
    DRY_RUN, ID, PAGE_PARAMETERS, dry_run_of, json_object_body, no_body, page_body, page_parameters,
    query_parameters,
)
from ingest.errors import ApiError, answer_503_while_the_database_is_down
from ingest.event_admin import (
    FILTER_NAMES, BadFilter, EventFilter, event_detail, event_summary, events_page, purged_message, replay_events,
    replay_matching,
)
from ingest.providers.base import bearer_credentials, secrets_equal
from ingest.runtime import Runtime
from ingest.schema import FINAL_STATUSES, Event

admin = Blueprint("admin", __name__, url_prefix="/api")
answer_503_while_the_database_is_down(admin)


def _runtime() -> Runtime:
    return current_app.extensions["crm_ingest"]


@admin.before_request
def require_admin_token():
    token = _runtime().settings.admin_token
    if token is None:
        raise ApiError(403, "admin_disabled", "the admin API is closed: set admin_token or CRM_INGEST_ADMIN_TOKEN")
    given = bearer_credentials(request.headers.get("Authorization", ""))
    if not secrets_equal(given, token.get_secret_value()):
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <admin_token>")


def _filter(values) -> EventFilter:
    try:
        return EventFilter.parse(**{name: values.get(name) for name in FILTER_NAMES})
    except BadFilter as exc:
        raise ApiError(400, "bad_filter", str(exc)) from None


@admin.get("/events")
def events_index():
    event_filter = _filter(query_parameters(*FILTER_NAMES, *PAGE_PARAMETERS))
    limit, before = page_parameters()
    with _runtime().sessions() as session:
        return jsonify(page_body("events", events_page(session, event_filter, limit, before), event_summary))


@admin.get(f"/events/<{ID}:event_id>")
def events_show(event_id: int):
    with _runtime().sessions() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise ApiError(404, "not_found", f"no event {event_id}")
        return jsonify(event_detail(event))


@admin.post(f"/events/<{ID}:event_id>/replay")
def events_replay(event_id: int):
    no_body()
    runtime = _runtime()
    with runtime.sessions() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise ApiError(404, "not_found", f"no event {event_id}")
        if event.purged_at is not None:
            raise ApiError(409, "purged", purged_message(event))
    if not replay_events(runtime, [event_id]):
        raise ApiError(409, "in_flight", f"event {event_id} is {event.status}; only finished events "
                       f"({', '.join(FINAL_STATUSES)}) can be replayed: replay it once it has finished")
    return jsonify(replayed=[event_id]), 202


@admin.post("/replay")
def replay_by_filter():
    body = json_object_body('{"status": "dead", "dry_run": true}', accepted=(*FILTER_NAMES, DRY_RUN))
    event_filter, dry_run = _filter(body), dry_run_of(body)
    try:
        return jsonify(replay_matching(_runtime(), event_filter, dry_run))
    except BadFilter as exc:  # no filter at all
        raise ApiError(400, "bad_filter", str(exc)) from None
