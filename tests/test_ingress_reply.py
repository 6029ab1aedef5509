"""The ingress's own encoding of a provider's reply and its reading of request headers match what Flask and the
earlier code produced, so providers and stored dedup keys see no difference."""
from __future__ import annotations

from datetime import date

import pytest
from flask import jsonify

from ingest.app import create_app
from ingest.hooks import _response
from ingest.providers.base import Provider, RawRequest, Reply, stable_hash


@pytest.fixture
def app(sqlite_runtime):
    """The real app, so that a change to its JSON settings shows up here as a difference from jsonify."""
    return create_app(sqlite_runtime)


@pytest.mark.parametrize("body", [
    {"ok": True},
    {"result": "ok", "custom_data": [{"title": "Заказ №1", "content": "ёлка"}], "z": 1, "a": None},
    {"order_id": 123, "day": date(2026, 11, 21)},
], ids=["plain", "unicode-and-order", "date"])
def test_a_json_reply_is_the_bytes_jsonify_writes(app, body):
    with app.app_context():
        expected = jsonify(body)
        response = _response(Reply(200, body))
    assert response.get_data() == expected.get_data()
    assert response.mimetype == expected.mimetype == "application/json"


def test_a_reply_keeps_its_status(app):
    with app.app_context():
        assert _response(Reply(202, {"ok": True})).status_code == 202


def test_a_text_reply_is_sent_as_it_is(app):
    with app.app_context():
        assert _response(Reply(200, "OK")).get_data() == b"OK"


def raw(headers: dict[str, str], body: bytes = b"{}") -> RawRequest:
    return RawRequest(method="POST", path="/hooks/x", query_string="", headers=headers, body=body)


def test_a_header_is_found_whatever_the_case_of_its_name():
    request = raw({"X-Webhook-Token": "secret", "content-type": "application/json"})
    assert request.header("x-webhook-token") == "secret"
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Missing", "none") == "none"


def test_of_two_headers_differing_only_in_case_the_first_one_is_read():
    assert raw({"X-Token": "first", "x-token": "second"}).header("X-TOKEN") == "first"


def test_the_body_hash_dedup_key_is_the_one_stored_by_earlier_versions():
    """Changing it would let a redelivery of an event stored before an upgrade through as a new event."""
    assert stable_hash("POST", "", "abc") == "db64f7e79fcec5147af02e809fc61966"
    request = raw({}, body=b'{"n": 1}')
    assert Provider().dedup_key(request) == f"sha256:{stable_hash('POST', '', request.body_sha256())}"
