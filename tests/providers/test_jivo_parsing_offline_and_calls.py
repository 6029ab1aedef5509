"""JivoChat offline messages and call events → canonical records. Pure parsing: no database.
"""
from __future__ import annotations

import pytest

from crm_sync.model import ConversationState, InteractionKind
from tests.conftest import payload
from tests.providers.jivo_support import parse_one, sample


def test_offline_message_is_an_offline_message_identified_by_its_id():
    message = parse_one(payload("jivo/offline_message.json")).interaction
    assert (message.kind, message.external_id) == (InteractionKind.OFFLINE_MESSAGE, "1665399500726")
    assert [(m.author, m.text) for m in message.transcript] == [("visitor", "Message text")]


def test_offline_message_keeps_a_multi_line_cyrillic_text_and_a_phone_with_an_extension():
    record = parse_one(payload("jivo/offline_message_phone_only.json"))
    assert record.person.phones == ["+7 (495) 123-45-67, доб. 305"]
    assert (record.person.name, record.person.emails) == (None, [])
    assert record.interaction.transcript[0].text.splitlines() == [
        "Перезвоните мне, пожалуйста, после 18:00.", "Нужен расчёт на 3 дивана."]
    assert record.interaction.external_id == "1714561200123"


def test_call_event_is_a_call_with_the_callers_phone_and_the_record_link():
    record = parse_one(payload("jivo/call_event.json"))
    call = record.interaction
    assert (call.kind, call.state, call.conversation_id) == (InteractionKind.CALL, ConversationState.CLOSED,
                                                             "jivo:2853:4398")
    assert call.extra["call"]["record_url"] == "http://example.com/record.mp3"
    assert record.person.phones == ["+14084987855"]


def test_a_call_from_an_unknown_number_adds_the_number_to_the_person():
    record = parse_one(payload("jivo/call_event_incoming_start.json"))
    assert record.person.phones == ["8 (495) 765-43-21"]
    assert record.interaction.state == ConversationState.OPEN


@pytest.mark.parametrize("status, state", [
    ("start", ConversationState.OPEN), ("agent_connected", ConversationState.ASSIGNED),
    ("client_connected", ConversationState.ASSIGNED), ("end", ConversationState.CLOSED),
    ("error", ConversationState.CLOSED), ("something_new", None),
])
def test_a_call_status_moves_the_call_state(status, state):
    body = sample("call_event.json")
    body["call"]["status"] = status
    assert parse_one(body).interaction.state == state
