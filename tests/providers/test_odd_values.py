"""Values no provider sends on purpose, found by fuzzing every provider's samples: a time beyond years 1–9999 once in
UTC, an integer of hundreds of digits where a timestamp belongs, NaN, free-form fields nested hundreds deep, an
object where text belongs. An authenticated request carrying one ends `processed` (the odd value unknown, cut or
null) or `dead` with `parse_error` and its reason, never with another error class.

Through the real app and processing, on SQLite and PostgreSQL (PostgreSQL's json refuses NaN, SQLite's does not).
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from crm_sync.model import MAX_FREE_FORM_DEPTH, TOO_DEEP
from crm_sync.schema import StoredInteraction
from tests.providers import jivo_support, livechat_support, roistat_support, rocketchat_support

GENERIC_TOKEN = "odd-values-generic-token-0123456789"
GENERIC = {"generic-main": {"provider": "generic", "token": GENERIC_TOKEN}}
YEAR_ONE_EAST = "0001-01-01T00:00:00+01:00"   # year 0 once in UTC
DEEP = "[" * 300 + "]" * 300


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def only_event(harness):
    [event] = harness.process_all()
    return event


def interactions(harness) -> list[StoredInteraction]:
    with harness.runtime.sessions() as session:
        return list(session.scalars(select(StoredInteraction)))


def post_generic(harness, body: bytes):
    return harness.client.post("/hooks/generic-main", data=body, headers={"Authorization": f"Bearer {GENERIC_TOKEN}"})


@pytest.mark.parametrize("param", ["created_date", "date"], ids=["lead", "call"])
def test_a_roistat_time_beyond_year_1_in_utc_is_unknown_time(provider_harness, param):
    harness = provider_harness(roistat_support.SOURCES)
    action = "lead" if param == "created_date" else "call"
    query = f"user={roistat_support.USER}&token={roistat_support.TOKEN}&action={action}&id=1&{param}=" \
            "0001-01-01T00:00:00%2B01:00"
    assert harness.client.get(roistat_support.HOOK, query_string=query).status_code == 200

    assert only_event(harness).status == "processed"


def test_a_jivo_message_timestamp_of_hundreds_of_digits_is_unknown_time(jivo):
    body = ('{"event_name":"chat_finished","chat_id":1,"chat":{"messages":[{"message":"x","timestamp":1%s}]}}'
            % ("0" * 400)).encode()
    assert jivo_support.post(jivo, body).status_code == 200

    assert only_event(jivo).status == "processed"


@pytest.mark.parametrize("started", ["²", YEAR_ONE_EAST], ids=["a superscript digit", "year 1 east of UTC"])
def test_a_livechat_start_time_that_is_no_time_is_unknown_time(livechat, started):
    body = json.dumps({"event_type": "chat_started", "chat": {"id": "c", "started_timestamp": started}}).encode()
    assert livechat_support.post(livechat, body, source=livechat_support.LEGACY_ONLY,
                                 headers=livechat_support.basic()).status_code == 200

    assert only_event(livechat).status == "processed"


def test_a_rocketchat_message_time_beyond_year_1_in_utc_is_unknown_time(rocket):
    body = {"type": "Message", "_id": "r2", "visitor": {"_id": "v2", "name": "A"},
            "messages": [{"_id": "m", "msg": "hi", "ts": YEAR_ONE_EAST}]}
    assert rocketchat_support.post(rocket, body).status_code == 200

    assert only_event(rocket).status == "processed"


def test_free_form_fields_nested_hundreds_deep_are_cut_where_no_provider_nests(rocket):
    body = '{"type":"LivechatSession","_id":"r3","visitor":{"_id":"v3"},"customFields":{"a":%s}}' % DEEP
    assert rocketchat_support.post(rocket, body.encode()).status_code == 200

    assert only_event(rocket).status == "processed"
    stored = json.dumps([interaction.details for interaction in interactions(rocket)])
    assert TOO_DEEP in stored and "[" * (MAX_FREE_FORM_DEPTH + 2) not in stored


def test_nan_in_a_free_form_field_is_stored_as_null(rocket):
    body = b'{"type":"LivechatSession","_id":"r4","visitor":{"_id":"v4"},"customFields":{"a":NaN,"b":1e400}}'
    assert rocketchat_support.post(rocket, body).status_code == 200

    assert only_event(rocket).status == "processed"
    stored = json.dumps([interaction.details for interaction in interactions(rocket)])
    assert "NaN" not in stored and "Infinity" not in stored


def test_a_number_where_an_email_belongs_is_kept_as_text(provider_harness):
    harness = provider_harness(GENERIC)
    assert post_generic(harness, b'{"email": 1.5, "name": "Ivan"}').status_code == 200

    assert only_event(harness).status == "processed"


@pytest.mark.parametrize("body, named", [
    (b'{"email": {"a": 1}}', "email"),
    (b'{"email": true}', "email"),
    (b'{"type": {"a": 1}, "email": "a@example.com"}', "type"),
    (b'{"id": [1, 2], "email": "a@example.com"}', "id"),
], ids=["an object as an email", "true as an email", "an object as the type", "a list as the id"])
def test_an_object_where_text_belongs_is_a_parse_error_naming_it(provider_harness, body, named):
    harness = provider_harness(GENERIC)
    assert post_generic(harness, body).status_code == 200

    event = only_event(harness)
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert named in event.error_message


def test_the_canonical_model_cuts_free_form_values_at_its_depth():
    from crm_sync.model import Lead

    lead = Lead(data={"a": nested(MAX_FREE_FORM_DEPTH + 10)})

    depth, value = 1, lead.data["a"]
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    assert (depth, value) == (MAX_FREE_FORM_DEPTH, TOO_DEEP)
