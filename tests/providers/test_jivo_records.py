"""JivoChat payloads → canonical records: what each event means, whatever shape Jivo writes it in.

Pure parsing: no database. The HTTP side (secret URL, replies, dedup, processing) is in test_jivo.py.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.model import CanonicalRecord, ConversationState, InteractionKind
from ingest.providers import IgnoreEvent, ParseError, RawRequest, get_provider
from tests.conftest import payload

jivo = get_provider("jivo")


def request_of(body: bytes | dict) -> RawRequest:
    data = json.dumps(body, ensure_ascii=False).encode() if isinstance(body, dict) else body
    return RawRequest(method="POST", path="/hooks/jivo-main/secret", query_string="", headers={}, body=data,
                      content_type="application/json")


def parse_one(body: bytes | dict) -> CanonicalRecord:
    records = jivo.parse(request_of(body))
    assert len(records) == 1
    return records[0]


def sample(name: str) -> dict:
    return json.loads(payload(f"jivo/{name}"))


def identities(record: CanonicalRecord) -> dict[str, str]:
    return {identity.kind: identity.value for identity in record.person.identities}


# --- chats ----------------------------------------------------------------------------------------------------------

def test_chat_accepted_is_an_assigned_chat_with_the_visitor_and_the_agent():
    record = parse_one(payload("jivo/chat_accepted.json"))
    chat = record.interaction
    assert record.event_type == "chat_accepted"
    assert (chat.kind, chat.state) == (InteractionKind.CHAT, ConversationState.ASSIGNED)
    assert (record.person.name, record.person.emails, record.person.phones) == (
        "John Smith", ["email@example.com"], ["+14084987855"])
    assert identities(record) == {"jivo.client_id": "2198", "jivo.visitor_number": "2198"}
    assert (chat.agent.id, chat.agent.name, chat.agent.email) == ("2016", "Thomas Anderson", "agent@jivosite.com")


def test_chat_accepted_keeps_page_topic_tags_geo_and_the_client_card_fields():
    record = parse_one(payload("jivo/chat_accepted.json"))
    chat = record.interaction
    assert (chat.page.url, chat.page.title, chat.subject) == ("http://example.com/", "Page title", "Topic_1")
    assert chat.tags == ["Tag example"]
    assert chat.geo["city"] == "San Francisco" and chat.geo["ip"] == "208.80.152.201"
    assert chat.extra["department"] == "Sales"
    assert chat.extra["assigned_agent"] == {"id": "1", "name": "Agent", "email": "agent1@gmail.com"}
    assert (record.person.company, record.person.attributes["category"]) == ("Company name", "contact_later")


def test_the_conversation_id_is_the_chat_id_within_its_channel():
    accepted = parse_one(payload("jivo/chat_accepted.json")).interaction
    other_channel = parse_one({**sample("chat_accepted.json"), "widget_id": "9999"}).interaction
    assert accepted.conversation_id == "jivo:3948:7636"
    assert other_channel.conversation_id == "jivo:9999:7636"


def test_chat_updated_is_the_same_conversation_as_its_chat_accepted():
    accepted = parse_one({**sample("chat_accepted.json"), "chat_id": 7507}).interaction
    updated = parse_one(payload("jivo/chat_updated.json")).interaction
    assert updated.kind == InteractionKind.CHAT
    assert updated.conversation_id == accepted.conversation_id == "jivo:3948:7507"


def test_legacy_chat_assigned_is_an_assigned_chat_keeping_the_crm_link_and_user_token():
    record = parse_one(payload("jivo/chat_assigned.json"))
    assert record.interaction.state == ConversationState.ASSIGNED
    assert record.interaction.extra["crm_link"] == "https://example.com"
    assert record.person.attributes["user_token"] == "3c077929b8_12175"


def test_chat_finished_is_a_closed_chat_with_its_transcript_in_utc():
    chat = parse_one(payload("jivo/chat_finished.json")).interaction
    assert chat.state == ConversationState.CLOSED
    assert [(m.author, m.at) for m in chat.transcript] == [
        ("visitor", datetime(2022, 10, 10, 10, 7, 56, tzinfo=timezone.utc)),
        ("agent", datetime(2022, 10, 10, 10, 8, 3, tzinfo=timezone.utc)),
    ]
    assert chat.occurred_at == chat.transcript[0].at


def test_a_message_keeps_its_line_breaks_and_tabs_and_loses_other_control_characters():
    body = sample("chat_finished.json")
    body["chat"]["messages"][0]["message"] = "line one\r\n\tline two\u0008\u001b"
    assert parse_one(body).interaction.transcript[0].text == "line one\r\n\tline two"


def test_chat_finished_takes_its_agent_from_the_agents_list():
    chat = parse_one(payload("jivo/chat_finished.json")).interaction
    assert (chat.agent.id, chat.agent.name) == ("1", "Thomas Anderson")
    assert chat.transcript[1].author_name == "Thomas Anderson"


def test_chat_finished_names_each_agent_message_by_its_agent_whatever_the_id_type():
    chat = parse_one(payload("jivo/chat_finished_cyrillic_two_agents.json")).interaction
    agent_lines = [(m.author_name, m.text) for m in chat.transcript if m.author == "agent"]
    assert agent_lines == [("Ольга Смирнова", "Добрый день, Анна! Да, доставка 2–3 дня."),
                           ("Игорь Кузнецов", "Передаю вас коллеге по оплате.")]
    assert chat.extra["agents"] == ["Ольга Смирнова", "Игорь Кузнецов"]


def test_chat_finished_skips_empty_messages_and_reads_timestamps_written_as_text():
    chat = parse_one(payload("jivo/chat_finished_cyrillic_two_agents.json")).interaction
    assert len(chat.transcript) == 3
    assert chat.transcript[0].at == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


def test_chat_finished_reads_messages_sent_as_an_object_and_millisecond_timestamps():
    body = sample("chat_finished.json")
    body["chat"]["messages"] = {"0": {"message": "Привет", "timestamp": 1665396476000, "type": "visitor"},
                                "1": {"message": "Hello", "timestamp": 1665396483, "type": "agent", "agent_id": "1"}}
    chat = parse_one(body).interaction
    assert [m.text for m in chat.transcript] == ["Привет", "Hello"]
    assert chat.transcript[0].at == datetime(2022, 10, 10, 10, 7, 56, tzinfo=timezone.utc)


def test_chat_finished_without_structured_messages_keeps_the_plain_transcript():
    body = {**sample("chat_finished.json"), "chat": None, "plain_messages": "John: hi\nThomas: hello"}
    chat = parse_one(body).interaction
    assert chat.transcript == []
    assert chat.extra["plain_transcript"] == "John: hi\nThomas: hello"


# --- offline messages and calls -------------------------------------------------------------------------------------

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


# --- client events --------------------------------------------------------------------------------------------------

def test_client_updated_is_a_contact_update_linking_the_client_id_and_the_visitor_number():
    record = parse_one(payload("jivo/client_updated.json"))
    assert record.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert identities(record) == {"jivo.client_id": "1217", "jivo.visitor_number": "1217"}
    assert record.interaction.agent.name == "Agent3"
    assert record.interaction.tags == ["Sales"]


def test_client_attribute_updated_records_the_attributes_on_the_client():
    record = parse_one(payload("jivo/client_attribute_updated.json"))
    assert record.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert identities(record) == {"jivo.client_id": "1217", "jivo.visitor_number": "1217"}
    assert record.person.attributes == {"some_number_attribute_name": 1234,
                                        "some_string_attribute_name": "Some string"}


def test_a_client_id_written_as_text_or_as_a_number_is_the_same_client():
    as_number = parse_one(payload("jivo/client_attribute_updated.json"))
    as_text = parse_one(payload("jivo/client_attribute_updated_string_id.json"))
    assert identities(as_number)["jivo.client_id"] == identities(as_text)["jivo.client_id"] == "1217"
    assert as_text.person.attributes["Город"] == "Подольск"


def test_client_attribute_updated_naming_no_client_is_ignored_with_the_reason():
    with pytest.raises(IgnoreEvent, match="no client_id"):
        jivo.parse(request_of({"event_name": "client_attribute_updated", "attributes": {"a": 1}}))


def test_client_attribute_updated_naming_its_client_only_by_user_token_is_ignored():
    with pytest.raises(IgnoreEvent, match="no client_id"):
        jivo.parse(request_of({"event_name": "client_attribute_updated", "user_token": "https://shop.example/me",
                               "attributes": {"a": 1}}))


def test_a_crm_client_event_is_a_contact_update_with_the_cards_contacts():
    record = parse_one(payload("jivo/crm_updated_client_contacts.json"))
    person = record.person
    assert record.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert (person.name, person.phones, person.emails) == ("Фёдор Сидоров", ["8 (916) 555-12-34"],
                                                          ["f.sidorov@example.ru"])
    assert identities(record) == {"jivo.client_id": "1217", "jivo.visitor_number": "1217"}
    assert person.attributes["crm_link"] == "https://crm.example.ru/clients/1217"


def test_a_crm_agent_assignment_names_the_responsible_agent_and_the_organization():
    record = parse_one(payload("jivo/crm_assigned_agent_to_client.json"))
    assert record.interaction.agent.id == "2"
    assert (record.person.company, record.person.emails) == ("Company", ["johnsmith@mail.com"])


def test_a_crm_status_assignment_carrying_a_client_card_is_a_contact_update():
    record = parse_one(payload("jivo/crm_assigned_status.json"))
    assert record.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert identities(record) == {"jivo.client_id": "1", "jivo.visitor_number": "1"}
    assert record.person.attributes["category"] == "unsuccessful"


def test_a_crm_client_event_naming_no_client_is_a_parse_error():
    with pytest.raises(ParseError, match="deleted_client carries no client"):
        jivo.parse(request_of({"event_type": "crm_client", "event_name": "deleted_client", "contacts": []}))


@pytest.mark.parametrize("name, about", [
    ("crm_created_pipeline.json", "pipeline"), ("crm_created_deal.json", "deal"), ("crm_completed_task.json", "task"),
])
def test_crm_events_about_the_crm_itself_are_ignored_with_a_reason(name, about):
    with pytest.raises(IgnoreEvent, match=f"CRM {about} event without a client card"):
        jivo.parse(request_of(payload(f"jivo/{name}")))


# --- type drift and sender quirks -----------------------------------------------------------------------------------

def test_ids_written_as_numbers_read_as_text():
    record = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    assert identities(record)["jivo.visitor_number"] == "2199"
    assert record.interaction.conversation_id == "jivo:3948:7641"
    assert record.interaction.agent.id == "2016"


def test_a_user_token_is_kept_as_an_attribute_and_null_or_missing_is_none():
    with_token = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    null_token = parse_one(payload("jivo/chat_accepted.json"))
    missing_token = parse_one(payload("jivo/chat_finished.json"))
    assert with_token.person.attributes["user_token"] == "3c077929b8_12175"
    assert "user_token" not in null_token.person.attributes | missing_token.person.attributes


def test_a_user_token_is_no_identity_the_site_may_pass_the_same_one_for_everybody():
    record = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    assert not any(kind == "jivo.user_token" for kind in identities(record))


def test_the_visitor_number_of_a_chat_is_also_the_client_id_of_client_events():
    chat = parse_one(payload("jivo/chat_accepted.json"))
    attributes = parse_one({**sample("client_attribute_updated.json"), "client_id": 2198})
    assert identities(chat) == identities(attributes) == {"jivo.client_id": "2198", "jivo.visitor_number": "2198"}


def test_cyrillic_names_and_free_form_phones_are_kept_as_written():
    record = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    assert record.person.name == "Анна Петрова"
    assert record.person.phones == ["8 (916) 123-45-67 доб. 12"]
    assert record.interaction.agent.name == "Ольга Смирнова"
    assert record.interaction.page.title == "Диваны — купить в Москве"


def test_empty_strings_are_absent_values():
    record = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json"))
    assert record.person.emails == []
    assert record.person.description is None


def test_null_empty_objects_and_empty_arrays_read_as_absent():
    record = parse_one(payload("jivo/chat_finished_cyrillic_two_agents.json"))
    assert record.person.company is None and "category" not in record.person.attributes
    assert "assigned_agent" not in record.interaction.extra
    assert set(record.interaction.geo) == {"ip"}


def test_a_minimal_chat_with_every_optional_key_missing_still_parses():
    record = parse_one(payload("jivo/chat_accepted_minimal.json"))
    assert identities(record) == {"jivo.client_id": "2200", "jivo.visitor_number": "2200"}
    chat = record.interaction
    assert (chat.page, chat.utm, chat.geo, chat.tags, chat.subject) == (None, {}, {}, [], None)


def test_a_sub_object_of_the_wrong_type_reads_as_empty_instead_of_failing():
    body = {**sample("chat_accepted.json"), "visitor": "John", "session": [], "tags": {"0": "VIP"}, "agent": 5}
    record = parse_one(body)
    assert record.person.is_empty
    assert record.interaction.tags == ["VIP"] and record.interaction.agent is None


def test_utm_from_the_pipe_string_alone_is_decoded():
    chat = parse_one(payload("jivo/chat_accepted_cyrillic_free_form_phone.json")).interaction
    assert chat.utm == {"source": "yandex", "medium": "cpc", "campaign": "весна_2024", "term": "купить диван"}


def test_utm_from_utm_json_alone_skips_empty_values():
    chat = parse_one(payload("jivo/chat_finished_cyrillic_two_agents.json")).interaction
    assert chat.utm == {"source": "yandex", "medium": "cpc", "campaign": "весна_2024"}


def test_utm_json_wins_and_the_pipe_string_fills_what_it_lacks():
    body = sample("chat_accepted.json")
    body["session"]["utm"] = "utm_source=bing|utm_medium=cpc|utm_content=side|keyword"
    body["session"]["utm_json"] = {"source": "google", "campaign": "spring"}
    chat = parse_one(body).interaction
    assert chat.utm == {"source": "google", "campaign": "spring", "medium": "cpc", "content": "side"}


def test_an_event_name_with_capitals_or_spaces_is_recognised():
    record = parse_one({**sample("chat_accepted.json"), "event_name": " Chat_Accepted "})
    assert record.event_type == "chat_accepted"
    with pytest.raises(IgnoreEvent):
        jivo.parse(request_of({"event_name": "completed task", "task_id": 2}))


# --- what cannot be parsed ------------------------------------------------------------------------------------------

def test_an_unknown_event_is_a_parse_error_to_replay_later():
    with pytest.raises(ParseError, match="unknown Jivo event 'chat_rated'"):
        jivo.parse(request_of(payload("jivo/unknown_event.json")))


@pytest.mark.parametrize("body, reason", [
    (b"", "empty"), (b"event_name=chat_accepted", "not valid JSON"), (b"[1, 2]", "not an object"),
    (b'{"chat_id": 1}', "no event_name"), (b'{"event_name": 5}', "no event_name"),
    (b"{\"event_name\": \"\xc3\x28\"}", "not UTF-8"),
])
def test_a_body_that_is_not_a_jivo_event_is_a_parse_error_with_the_reason(body, reason):
    with pytest.raises(ParseError, match=reason):
        jivo.parse(request_of(body))


SAMPLE_EVENTS = sorted(path.name for path in (Path(__file__).parents[1] / "payloads" / "jivo").glob("*.json")
                       if not path.name.endswith(".response.json"))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10)


def _drifted(value, data):
    """A sample with some values, at any depth, replaced by any JSON value or dropped."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            roll = data.draw(st.integers(0, 9))
            if roll == 0 and key != "event_name":
                continue
            out[key] = data.draw(JSON_VALUES) if roll == 1 and key != "event_name" else _drifted(item, data)
        return out
    if isinstance(value, list):
        return [data.draw(JSON_VALUES) if data.draw(st.integers(0, 9)) == 0 else _drifted(item, data)
                for item in value]
    return value


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_type_drift_in_any_field_parses_or_fails_for_a_stated_reason_and_keeps_a_dedup_key(data):
    body = _drifted(sample(data.draw(st.sampled_from(SAMPLE_EVENTS))), data)
    request = request_of(body)
    assert jivo.dedup_key(request).startswith("jivo:")
    try:
        jivo.parse(request)
    except IgnoreEvent:
        pass
    except ParseError as exc:
        assert "not a readable Jivo event" not in str(exc)
