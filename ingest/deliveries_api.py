"""`/api/deliveries`: deliveries with their reasons, one delivery in detail, retry one or by filter (admin)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from crm_sync.schema import Delivery, DeliveryStatus
from ingest.admin import require_admin_token
from ingest.delivery_admin import (
    DeliveryFilter, delivery_detail, delivery_summary, list_deliveries, retry_deliveries, retry_matching,
)
from ingest.errors import ApiError
from ingest.event_admin import BadFilter
from ingest.runtime import Runtime

deliveries_api = Blueprint("deliveries_api", __name__, url_prefix="/api")
deliveries_api.before_request(require_admin_token)


def _runtime() -> Runtime:
    return current_app.extensions["crm_ingest"]


def _filter(values) -> DeliveryFilter:
    try:
        return DeliveryFilter.parse(values.get("status"), values.get("destination"))
    except BadFilter as exc:
        raise ApiError(400, "bad_filter", str(exc)) from None


@deliveries_api.get("/deliveries")
def deliveries_index():
    delivery_filter = _filter(request.args)
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        raise ApiError(400, "bad_filter", "limit must be a whole number") from None
    with _runtime().sessions() as session:
        return jsonify(deliveries=[delivery_summary(d) for d in list_deliveries(session, delivery_filter, limit)])


@deliveries_api.get("/deliveries/<int:delivery_id>")
def deliveries_show(delivery_id: int):
    with _runtime().sessions() as session:
        return jsonify(delivery_detail(session, _delivery(session, delivery_id)))


@deliveries_api.post("/deliveries/<int:delivery_id>/retry")
def deliveries_retry(delivery_id: int):
    runtime = _runtime()
    with runtime.sessions() as session:
        delivery = _delivery(session, delivery_id)
    if not retry_deliveries(runtime, [delivery_id]):
        raise ApiError(409, "not_retriable", f"delivery {delivery_id} is {delivery.status}; only "
                       f"{' and '.join(DeliveryStatus.RETRIABLE)} deliveries can be retried")
    return jsonify(retried=[delivery_id]), 202


@deliveries_api.post("/deliveries/retry")
def deliveries_retry_matching():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", 'send a JSON object such as {"status": "dead", "dry_run": true}')
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "bad_request", "dry_run must be true or false")
    try:
        return jsonify(retry_matching(_runtime(), _filter(body), dry_run))
    except BadFilter as exc:
        raise ApiError(400, "bad_filter", str(exc)) from None


def _delivery(session, delivery_id: int) -> Delivery:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    return delivery
