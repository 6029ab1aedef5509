"""JivoChat replies: every event, even garbage, is acknowledged with `{"result":"ok"}`, stored byte-exact, and
ends processed, ignored or dead with a reason.

Every test here runs on the embedded SQLite default and on PostgreSQL (the `database_url` parametrisation).
"""
from __future__ import annotations

import pytest

from tests.conftest import payload
from tests.providers.jivo_support import OK, post

SAMPLE_OUTCOMES = {
    "chat_accepted.json": "processed", "chat_updated.json": "processed", "chat_assigned.json": "processed",
    "chat_finished.json": "processed", "offline_message.json": "processed", "call_event.json": "processed",
    "client_updated.json": "processed", "client_attribute_updated.json": "processed",
    "crm_assigned_agent_to_client.json": "processed", "crm_updated_client_contacts.json": "processed",
    "crm_assigned_status.json": "processed", "chat_accepted_cyrillic_free_form_phone.json": "processed",
    "chat_finished_cyrillic_two_agents.json": "processed", "offline_message_phone_only.json": "processed",
    "call_event_incoming_start.json": "processed", "chat_accepted_minimal.json": "processed",
    "crm_created_pipeline.json": "ignored", "crm_created_deal.json": "ignored", "crm_completed_task.json": "ignored",
    "unknown_event.json": "dead",
}


def test_every_sample_event_is_acknowledged_with_result_ok_and_stored_byte_exact(jivo):
    replies = {name: post(jivo, payload(f"jivo/{name}")) for name in SAMPLE_OUTCOMES}
    assert {name: (r.status_code, r.get_json()) for name, r in replies.items()} == {
        name: (200, OK) for name in SAMPLE_OUTCOMES}
    assert [event.body for event in jivo.events()] == [payload(f"jivo/{name}") for name in SAMPLE_OUTCOMES]


def test_every_sample_event_ends_processed_ignored_or_dead_with_a_reason(jivo):
    for name in SAMPLE_OUTCOMES:
        post(jivo, payload(f"jivo/{name}"))
    events = jivo.process_all()
    assert dict(zip(SAMPLE_OUTCOMES, (event.status for event in events))) == SAMPLE_OUTCOMES
    assert all((event.error_message is None) == (event.status == "processed") for event in events)


def test_an_unknown_event_is_acknowledged_and_kept_dead_for_replay(jivo):
    response = post(jivo, payload("jivo/unknown_event.json"))
    assert response.get_json() == OK
    [event] = jivo.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "chat_rated" in event.error_message


@pytest.mark.parametrize("body", [b"not json at all", b"[]", b'{"chat_id": 7636}', b"",
                                  b'{"event_name": "chat_accepted", "visitor": "John", "session": 5}'])
def test_a_garbage_body_is_acknowledged_with_result_ok_and_stored(jivo, body):
    response = post(jivo, body)
    assert (response.status_code, response.get_json()) == (200, OK)
    assert [event.body for event in jivo.events()] == [body]


def test_an_unreadable_body_goes_dead_with_the_reason(jivo):
    post(jivo, b'{"event_name": "chat_accepted", ')
    [event] = jivo.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "not valid JSON" in event.error_message


def test_a_chat_accepted_for_a_visitor_we_do_not_know_gets_the_plain_acknowledgement(jivo):
    response = post(jivo, payload("jivo/chat_accepted.json"))
    assert response.get_json() == OK
