"""`/api/contacts`: search contacts by email, phone or identity, and show one contact with everything known (admin)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from crm_sync.contact_detail import contact_detail
from crm_sync.contacts import find_contact_ids, split_identity
from crm_sync.normalise import rules_from_settings
from ingest.admin import require_admin_token
from ingest.admin_params import ID, query_parameters
from ingest.errors import ApiError, answer_503_while_the_database_is_down
from ingest.runtime import Runtime

MAX_FOUND = 50
SEARCH_PARAMETERS = ("email", "phone", "identity")

contacts_api = Blueprint("contacts_api", __name__, url_prefix="/api")
contacts_api.before_request(require_admin_token)
answer_503_while_the_database_is_down(contacts_api)


def _runtime() -> Runtime:
    return current_app.extensions["crm_ingest"]


@contacts_api.get("/contacts")
def contacts_search():
    given = query_parameters(*SEARCH_PARAMETERS)
    email, phone, identity = (given.get(name, "").strip() for name in SEARCH_PARAMETERS)
    if not (email or phone or identity):
        raise ApiError(400, "bad_filter", "give email, phone or identity=<kind>:<value>, e.g. ?phone=%2B79161234567")
    kind, _, value = identity.partition(":")
    if identity and not (kind and value):
        raise ApiError(400, "bad_filter", "identity must be <kind>:<value>, e.g. jivo.client_id:1217")
    runtime = _runtime()
    with runtime.sessions() as session:
        found = find_contact_ids(session, email=email or None, phone=phone or None,
                                 identity=split_identity(session, identity) if identity else None,
                                 rules=rules_from_settings(runtime.settings))
        details = [contact_detail(session, contact_id) for contact_id in sorted(found)[:MAX_FOUND]]
    return jsonify(contacts=[detail for detail in details if detail], total=len(found))


@contacts_api.get(f"/contacts/<{ID}:contact_id>")
def contacts_show(contact_id: int):
    with _runtime().sessions() as session:
        detail = contact_detail(session, contact_id)
    if detail is None:
        raise ApiError(404, "not_found", f"no contact {contact_id}")
    return jsonify(detail)
