"""`POST /api/forget`: right to erasure over the admin API (admin token), the same as `crm-ingest forget`."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from crm_sync.erasure import forget_person
from crm_sync.erasure_matching import DifferentPeople
from crm_sync.normalise import rules_from_settings
from ingest.admin import require_admin_token
from ingest.admin_params import DRY_RUN, dry_run_of, json_object_body
from ingest.errors import ApiError, answer_503_while_the_database_is_down
from ingest.runtime import Runtime

privacy_api = Blueprint("privacy_api", __name__, url_prefix="/api")
privacy_api.before_request(require_admin_token)
answer_503_while_the_database_is_down(privacy_api)


@privacy_api.post("/forget")
def forget():
    """Body `{"email": …, "phone": …, "dry_run": true}`; dry_run defaults to true, as for /api/replay. An email and
    a phone that find different contacts: 409 `different_people` with the contacts each finds, nothing erased."""
    body = json_object_body('{"email": "a@example.com", "dry_run": true}', accepted=("email", "phone", DRY_RUN))
    email, phone = (body.get(key) for key in ("email", "phone"))
    if not all(value is None or isinstance(value, str) for value in (email, phone)) or not (email or phone):
        raise ApiError(400, "bad_request", "give email and/or phone as strings")
    dry_run = dry_run_of(body)
    runtime: Runtime = current_app.extensions["crm_ingest"]
    try:
        report = forget_person(runtime.sessions, rules_from_settings(runtime.settings), email=email or None,
                               phone=phone or None, command="POST /api/forget" + (" dry_run" if dry_run else ""),
                               dry_run=dry_run)
    except DifferentPeople as refused:
        return jsonify(error="different_people", message=str(refused), candidates=refused.candidates), 409
    return jsonify({**report.as_dict(), "found": report.found})
