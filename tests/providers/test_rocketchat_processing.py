"""Rocket.Chat processing: events arriving out of order each stand on their own, and every sample is processed
into what the provider parses.

Every test here runs on SQLite and PostgreSQL (the `database_url` parametrisation).
"""
from __future__ import annotations

import pytest

from crm_sync.contacts import list_interactions
from tests.conftest import payload
from tests.providers.rocketchat_support import ALL_SAMPLES, post, provider, raw

ROOM = "Tc5SyBZHovD4k8BXv"


def stored_records(event) -> list[dict]:
    return event.result["records"]


def test_a_message_before_the_session_start_is_processed_on_its_own(rocket):
    post(rocket, "Message.json")
    post(rocket, "LivechatSessionStart.json")
    message_event, start_event = rocket.process_all()
    assert (message_event.status, start_event.status) == ("processed", "processed")
    (message,), (start,) = stored_records(message_event), stored_records(start_event)
    assert message["interaction"]["conversation_id"] == start["interaction"]["conversation_id"] == f"rocketchat:{ROOM}"


def test_a_retried_start_after_the_close_is_the_same_conversation_reported_open(rocket):
    post(rocket, "LivechatSessionStart.json")
    post(rocket, "LivechatSession.json")
    post(rocket, "LivechatSessionStart.json")
    start_event, close_event = rocket.process_all()
    assert start_event.duplicate_count == 1
    (start,), (close,) = stored_records(start_event), stored_records(close_event)
    assert start["interaction"]["conversation_id"] == close["interaction"]["conversation_id"]
    assert (start["interaction"]["state"], close["interaction"]["state"]) == ("open", "closed")


def test_a_start_processed_after_the_close_leaves_the_conversation_closed_in_the_contact_store(rocket):
    post(rocket, "LivechatSession.json")
    post(rocket, "LivechatSessionStart.json")
    assert [event.status for event in rocket.process_all()] == ["processed", "processed"]
    with rocket.runtime.sessions() as session:
        _, interactions = list_interactions(session, provider="rocketchat", kind="chat")
    assert {(i.conversation_id, i.state) for i in interactions} == {(f"rocketchat:{ROOM}", "closed")}


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_every_sample_is_processed_into_what_the_provider_parses(rocket, name):
    assert post(rocket, name).status_code == 200
    (event,) = rocket.process_all()
    assert event.status == "processed", event.error_message
    assert stored_records(event) == [r.model_dump(mode="json", exclude_defaults=True) for r in provider.parse(
        raw(payload(f"rocketchat/{name}")))]


def test_an_empty_object_is_answered_200_and_ends_dead_saying_the_body_has_no_type(rocket):
    assert post(rocket, b"{}").status_code == 200
    [event] = rocket.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert event.error_message.startswith("the body has no `type` field: not a Rocket.Chat webhook; known types: ")
