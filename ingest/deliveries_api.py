"""`/api/deliveries`: deliveries with their reasons, one delivery in detail, retry one or by filter (admin)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from crm_sync.schema import Delivery, DeliveryStatus
from ingest.admin import require_admin_token
from ingest.admin_params import (
    DRY_RUN, ID, PAGE_PARAMETERS, dry_run_of, json_object_body, no_body, page_body, page_parameters,
    query_parameters,
)
from ingest.delivery_admin import (
    FILTER_NAMES, DeliveryFilter, DestinationNotConfigured, deliveries_page, delivery_detail, delivery_summary,
    require_configured, retry_deliveries, retry_matching,
)
from ingest.errors import ApiError, answer_503_while_the_database_is_down
from ingest.listing import BadFilter
from ingest.runtime import Runtime

deliveries_api = Blueprint("deliveries_api", __name__, url_prefix="/api")
deliveries_api.before_request(require_admin_token)
answer_503_while_the_database_is_down(deliveries_api)


def _runtime() -> Runtime:
    return current_app.extensions["crm_ingest"]


def _filter(values) -> DeliveryFilter:
    try:
        return DeliveryFilter.parse(**{name: values.get(name) for name in FILTER_NAMES})
    except BadFilter as exc:
        raise ApiError(400, "bad_filter", str(exc)) from None


@deliveries_api.get("/deliveries")
def deliveries_index():
    delivery_filter = _filter(query_parameters(*FILTER_NAMES, *PAGE_PARAMETERS))
    limit, before = page_parameters()
    with _runtime().sessions() as session:
        page = deliveries_page(session, delivery_filter, limit, before)
        return jsonify(page_body("deliveries", page, delivery_summary))


@deliveries_api.get(f"/deliveries/<{ID}:delivery_id>")
def deliveries_show(delivery_id: int):
    with _runtime().sessions() as session:
        return jsonify(delivery_detail(session, _delivery(session, delivery_id)))


@deliveries_api.post(f"/deliveries/<{ID}:delivery_id>/retry")
def deliveries_retry(delivery_id: int):
    no_body()
    runtime = _runtime()
    with runtime.sessions() as session:
        delivery = _delivery(session, delivery_id)
    _require_configured(runtime, delivery.destination)
    if not retry_deliveries(runtime, [delivery_id]):
        raise ApiError(409, "not_retriable", f"delivery {delivery_id} is {delivery.status}; only "
                       f"{' and '.join(DeliveryStatus.RETRIABLE)} deliveries can be retried")
    return jsonify(retried=[delivery_id]), 202


@deliveries_api.post("/deliveries/retry")
def deliveries_retry_matching():
    body = json_object_body('{"status": "dead", "dry_run": true}', accepted=(*FILTER_NAMES, DRY_RUN))
    delivery_filter = _filter(body)
    try:
        return jsonify(retry_matching(_runtime(), delivery_filter, dry_run_of(body)))
    except BadFilter as exc:
        raise ApiError(400, "bad_filter", str(exc)) from None
    except DestinationNotConfigured as exc:
        raise ApiError(409, "unknown_destination", str(exc)) from None


def _require_configured(runtime: Runtime, name: str) -> None:
    try:
        require_configured(runtime, name)
    except DestinationNotConfigured as exc:
        raise ApiError(409, "unknown_destination", str(exc)) from None


def _delivery(session, delivery_id: int) -> Delivery:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    return delivery
