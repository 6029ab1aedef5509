"""Any authenticated request is stored and answered 200, and its processing ends in a status, whatever the fields hold.

Each provider's real samples with one field, or every field, changed to an arbitrary JSON value (NULs, lone surrogates,
huge numbers, nesting where a string was), or a Roistat query with one parameter's value arbitrary. This is what "bad input loses
nothing" means: a value the provider module did not expect may make the event dead with a stated reason, never a 5xx
that the provider retries forever, an event left without an outcome, or a crash logged as "processing failed".
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crm_sync.pipeline import process_events
from ingest.schema import EventStatus
from tests.conftest import GENERIC_TOKEN, payload
from tests.providers.roistat_support import HOOK as ROISTAT_HOOK
from tests.providers.roistat_support import SOURCES as ROISTAT_SOURCES
from tests.providers.roistat_support import sample as roistat_sample
from tests.providers.roistat_support import with_param

JIVO_SECRET = "jivo-url-secret-for-tests-0123456789"
ROCKET_TOKEN = "rocket-token-for-tests-0123456789"
LIVECHAT_SECRET = "lc-webhook-secret-for-tests-0123456789"
SOURCES = {
    "jivo-main": {"provider": "jivo", "url_secret": JIVO_SECRET},
    "rocket-main": {"provider": "rocketchat", "token": ROCKET_TOKEN},
    "livechat-main": {"provider": "livechat", "secret_key": LIVECHAT_SECRET},
    "generic-main": {"provider": "generic", "token": GENERIC_TOKEN},
    **ROISTAT_SOURCES,
}
# The fields saying which kind of event a body is: kept, so that the changed fields are read as that kind.
KIND_FIELDS = {"jivo": {("event_name",)}, "rocketchat": {("type",)}, "livechat": {("action",), ("secret_key",)}}
# provider -> (URL, headers, samples)
JSON_SENDERS = {
    "jivo": (f"/hooks/jivo-main/{JIVO_SECRET}", {}, ["chat_accepted.json", "chat_finished.json",
                                                   "offline_message.json", "client_updated.json", "call_event.json"]),
    "rocketchat": ("/hooks/rocket-main", {"X-RocketChat-Livechat-Token": ROCKET_TOKEN},
                   ["LivechatSession.json", "Message.json", "LeadCapture.json", "LivechatOfflineMessage.json"]),
    "livechat": ("/hooks/livechat-main", {}, ["incoming_chat.json", "incoming_event_message.json",
                                              "chat_deactivated.json", "customer_session_fields_updated.json"]),
}
FINAL = {EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.DEAD}

odd_text = st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "Иван\u202e", "x" * 5000, "+7 (916) 123-45-67",
                            "not-an-email@", "null", "1e309"]) | st.text(max_size=30)
odd_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=False) | odd_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=6)


def leaf_paths(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict) and value:
        return [p for key, item in value.items() for p in leaf_paths(item, path + (key,))]
    if isinstance(value, list) and value:
        return [p for index, item in enumerate(value) for p in leaf_paths(item, path + (index,))]
    return [path]


def replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    return [replaced(item, rest, new) if index == head else item for index, item in enumerate(value)]


def signed_sample(provider: str, name: str) -> dict:
    text = payload(f"{provider}/{name}").decode()
    return json.loads(text.replace('"<secret_key>"', json.dumps(LIVECHAT_SECRET)))


@pytest.fixture
def harness(provider_harness):
    return provider_harness(SOURCES)


def deliveries(harness) -> int:
    return sum(1 + event.duplicate_count for event in harness.events())


def assert_stored_and_concluded(harness, send) -> None:
    """Answered 200, or a 4xx that says what is wrong (Roistat: an action this version does not know), and
    stored either way; then every event processed to a final status, a dead one with a stated reason."""
    before = deliveries(harness)
    response = send()
    assert response.status_code == 200 or (
        response.status_code == 400 and set(response.get_json()) == {"error", "message"}), response.get_data()
    assert deliveries(harness) == before + 1
    waiting = [event.id for event in harness.events() if event.status == EventStatus.RECEIVED]
    process_events(harness.runtime.sessions, waiting)
    events = harness.events()
    assert {event.status for event in events} <= FINAL
    unexplained = [event.error_message for event in events if event.error_class == "processing_error"]
    assert unexplained == []  # an exception the provider module did not turn into a reason


@pytest.mark.parametrize("provider", sorted(JSON_SENDERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_sample_with_any_field_changed_is_stored_and_ends_with_a_status(harness, provider, data):
    url, headers, names = JSON_SENDERS[provider]
    body = signed_sample(provider, data.draw(st.sampled_from(names), label="sample"))
    paths = [path for path in leaf_paths(body) if path not in KIND_FIELDS[provider]]
    # One field changed, or every field given the same value (so that the few fields a provider reads get it too).
    changed = data.draw(st.sampled_from(paths) | st.just(None), label="field (None: all)")
    value = data.draw(odd_values, label="value")
    for path in paths if changed is None else [changed]:
        body = replaced(body, path, value)
    encoded = json.dumps(body).encode()
    # Every field given a 5 000-character key can pass max_body_bytes: that is a 413 (test_ingress_status), not this.
    assume(len(encoded) <= harness.runtime.settings.max_body_bytes)
    assert_stored_and_concluded(harness, lambda: harness.client.post(
        url, data=encoded, headers={"Content-Type": "application/json", **headers}))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["lead.query", "lead_minimal.query", "message.query", "call.query"]),
       data=st.data())
def test_a_roistat_request_with_any_parameter_changed_is_stored_and_ends_with_a_status(harness, name, data):
    query = roistat_sample(name)
    names = [pair.split("=", 1)[0] for pair in query.split("&") if pair.split("=", 1)[0] not in ("user", "token")]
    parameter = data.draw(st.sampled_from(names), label="parameter")
    value = data.draw(odd_values.map(lambda v: v if isinstance(v, str) else json.dumps(v)), label="value")
    query = with_param(query, parameter, quote(value, safe="", errors="surrogatepass"))
    assert_stored_and_concluded(harness, lambda: harness.client.get(ROISTAT_HOOK, query_string=query))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=odd_values)
def test_any_json_to_a_generic_source_is_stored_and_ends_with_a_status(harness, body):
    assert_stored_and_concluded(harness, lambda: harness.client.post(
        "/hooks/generic-main", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {GENERIC_TOKEN}", "Content-Type": "application/json"}))
