"""JivoChat redeliveries: what is the same event (stored once, counted) and what is a new one.

Every test here runs on the embedded SQLite default and on PostgreSQL (the `database_url` parametrisation).
"""
from __future__ import annotations

import json

from tests.conftest import payload
from tests.providers.jivo_support import OK, post, sample


def test_a_redelivered_chat_accepted_is_stored_once_and_counted(jivo):
    first = post(jivo, payload("jivo/chat_accepted.json"))
    again = post(jivo, payload("jivo/chat_accepted.json"))
    assert first.get_json() == again.get_json() == OK
    [event] = jivo.events()
    assert event.duplicate_count == 1


def test_a_redelivery_serialised_differently_is_still_the_same_event(jivo):
    post(jivo, payload("jivo/chat_accepted.json"))
    post(jivo, json.dumps(sample("chat_accepted.json"), sort_keys=True, separators=(",", ":")).encode())
    assert len(jivo.events()) == 1


def test_a_second_chat_updated_with_new_contact_data_is_a_new_event(jivo):
    post(jivo, payload("jivo/chat_updated.json"))
    post(jivo, payload("jivo/chat_updated_contacts_entered.json"))
    assert [event.duplicate_count for event in jivo.events()] == [0, 0]


def test_a_chat_updated_repeating_the_same_data_from_another_page_is_a_redelivery(jivo):
    post(jivo, payload("jivo/chat_updated.json"))
    post(jivo, payload("jivo/chat_updated_other_page.json"))
    [event] = jivo.events()
    assert event.duplicate_count == 1


def test_chat_accepted_and_chat_updated_with_the_same_data_are_two_events(jivo):
    post(jivo, {**sample("chat_updated.json"), "event_name": "chat_accepted"})
    post(jivo, payload("jivo/chat_updated.json"))
    assert len(jivo.events()) == 2


def test_the_same_chat_id_in_two_channels_is_two_events(jivo):
    post(jivo, payload("jivo/chat_accepted.json"))
    post(jivo, {**sample("chat_accepted.json"), "widget_id": "9999"})
    assert len(jivo.events()) == 2


def test_an_offline_message_is_deduplicated_by_its_id(jivo):
    post(jivo, payload("jivo/offline_message.json"))
    post(jivo, {**sample("offline_message.json"), "page": {"url": "http://example.com/other"}})
    post(jivo, {**sample("offline_message.json"), "offline_message_id": 1665399500999, "message": "Second one"})
    assert [event.duplicate_count for event in jivo.events()] == [1, 0]


def test_each_call_status_change_is_a_new_event(jivo):
    for status in ("start", "agent_connected", "end", "end"):
        body = sample("call_event.json")
        body["call"]["status"] = status
        post(jivo, body)
    assert [event.duplicate_count for event in jivo.events()] == [0, 0, 1]


def test_a_chat_finished_again_with_more_messages_is_a_new_event(jivo):
    post(jivo, payload("jivo/chat_finished.json"))
    post(jivo, payload("jivo/chat_finished.json"))
    more = sample("chat_finished.json")
    more["chat"]["messages"].append({"message": "One more thing", "timestamp": 1665396600, "type": "visitor"})
    post(jivo, more)
    assert [event.duplicate_count for event in jivo.events()] == [1, 0]


def test_a_repeated_client_update_is_a_redelivery_and_a_changed_one_is_new(jivo):
    post(jivo, payload("jivo/client_updated.json"))
    post(jivo, payload("jivo/client_updated.json"))
    changed = sample("client_updated.json")
    changed["visitor"]["phone"] = "+7 916 000-00-00"
    post(jivo, changed)
    assert [event.duplicate_count for event in jivo.events()] == [1, 0]


def test_a_chat_id_with_a_nul_is_stored_under_a_hashed_key_and_its_redelivery_counted(jivo):
    """PostgreSQL text refuses NUL: stored as the key's hash, where the raw key would be answered 503 forever."""
    body = {**sample("chat_accepted.json"), "chat_id": "76\u000036"}
    assert [post(jivo, body).status_code for _ in range(2)] == [200, 200]
    [event] = jivo.events()
    assert event.dedup_key.startswith("sha256:") and event.duplicate_count == 1


def test_garbage_bodies_are_deduplicated_by_their_bytes(jivo):
    post(jivo, b"not json")
    post(jivo, b"not json")
    post(jivo, b"not json either")
    assert [event.duplicate_count for event in jivo.events()] == [1, 0]
