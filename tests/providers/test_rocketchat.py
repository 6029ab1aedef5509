"""Rocket.Chat Omnichannel webhooks: what the server sends (tests/payloads/rocketchat/) and what we make of it.

Tests that go through HTTP and the event store run on SQLite and PostgreSQL (the `database_url` parametrisation);
tests of the dedup key and of parsing call the provider directly on a `RawRequest`, exactly what the route and the
worker call.
"""
from __future__ import annotations

import json

import pytest

from crm_sync.contacts import list_interactions
from crm_sync.model import CanonicalRecord, ConversationState, InteractionKind
from ingest.providers import ParseError, get_provider
from ingest.providers.base import IgnoreEvent, RawRequest
from ingest.providers.rocketchat.payload import RoomEvent
from ingest.providers.rocketchat.records import room_record
from ingest.settings import ConfigError, settings_from_dict
from tests.conftest import PAYLOADS, payload

TOKEN = "0c4f5e9b-secret-from-Livechat_secret_token"  # as in the samples' .headers files
SOURCE = "rocket-main"
ROOM = "Tc5SyBZHovD4k8BXv"
provider = get_provider("rocketchat")


# --- helpers -------------------------------------------------------------------------------------------------------

def body_of(name: str) -> dict:
    return json.loads(payload(f"rocketchat/{name}"))


def recorded_headers(stem: str) -> dict[str, str]:
    """Headers recorded with a sample (`<stem>.headers`)."""
    lines = (PAYLOADS / "rocketchat" / f"{stem}.headers").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


# What a Rocket.Chat server with our Secret Token sends.
SIGNED = {"Content-Type": "application/json", "X-RocketChat-Livechat-Token": TOKEN}


def raw(body: bytes | dict) -> RawRequest:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return RawRequest("POST", f"/hooks/{SOURCE}", "", {"Content-Type": "application/json"}, data, "application/json")


def key(body: bytes | dict) -> str:
    return provider.dedup_key(raw(body))


def record(name_or_body: str | dict) -> CanonicalRecord:
    body = body_of(name_or_body) if isinstance(name_or_body, str) else name_or_body
    records = provider.parse(raw(body))
    assert len(records) == 1
    return records[0]


def changed(name: str, **fields) -> dict:
    return {**body_of(name), **fields}


@pytest.fixture
def rocket(provider_harness):
    return provider_harness({SOURCE: {"provider": "rocketchat", "token": TOKEN}})


def post(harness, body: str | dict | bytes, headers: dict[str, str] = SIGNED):
    """A sample file's bytes as they are, a changed body, or raw bytes."""
    data = payload(f"rocketchat/{body}") if isinstance(body, str) else body
    data = json.dumps(data, ensure_ascii=False).encode() if isinstance(data, dict) else data
    return harness.client.post(f"/hooks/{SOURCE}", data=data, headers=headers)


def stored_records(event) -> list[dict]:
    return event.result["records"]


ALL_SAMPLES = sorted(p.name for p in (PAYLOADS / "rocketchat").glob("*.json") if p.name != "webhook_test.json")


# --- authentication and configuration ------------------------------------------------------------------------------

def test_a_server_without_a_secret_token_sends_no_header_and_is_rejected_with_401(rocket):
    response = post(rocket, "Message.json", headers=recorded_headers("Message"))
    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication_failed"
    assert rocket.events() == []


def test_request_with_a_wrong_token_is_rejected_with_401(rocket):
    headers = {"Content-Type": "application/json", "X-RocketChat-Livechat-Token": TOKEN[:-1] + "X"}
    assert post(rocket, "Message.json", headers=headers).status_code == 401
    assert rocket.events() == []


def test_the_token_header_is_never_stored(rocket):
    assert post(rocket, "LivechatSession.json", headers=recorded_headers("LivechatSession")).status_code == 200
    (event,) = rocket.events()
    assert {name.lower() for name in event.headers} >= {"content-type"}
    assert "x-rocketchat-livechat-token" not in {name.lower() for name in event.headers}
    assert TOKEN not in json.dumps(event.headers)


def test_a_source_without_token_is_a_configuration_error():
    with pytest.raises(ConfigError, match=r"sources\.rocket-main\.token: .*Secret Token"):
        settings_from_dict({"sources": {"rocket-main": {"provider": "rocketchat"}}}, env={})


def test_a_short_token_is_a_configuration_error():
    with pytest.raises(ConfigError, match="at least 16 characters"):
        settings_from_dict({"sources": {"rocket-main": {"provider": "rocketchat", "token": "secret"}}}, env={})


def test_the_starter_source_is_valid_and_its_instructions_name_url_token_and_toggles():
    section = provider.starter_source("k" * 32)
    source = settings_from_dict({"sources": {"rocketchat-main": section}}, env={}).sources["rocketchat-main"]
    text = provider.setup_instructions("https://crm.example/hooks/rocketchat-main", source)
    for expected in ("Administration > Omnichannel > Webhooks", "https://crm.example/hooks/rocketchat-main",
                     "k" * 32, "Chat Close", "Visitor Messages", "Send Test"):
        assert expected in text


# --- the reply ------------------------------------------------------------------------------------------------------

def test_a_room_event_is_answered_exactly_200_with_a_small_json_body_naming_the_conversation(rocket):
    response = post(rocket, "LivechatSessionStart.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.data.strip() == b'{"ok":true,"data":{"conversation_id":"rocketchat:Tc5SyBZHovD4k8BXv"}}'


def test_every_delivery_for_one_room_gets_the_same_reply_bytes(rocket):
    replies = {post(rocket, name).data for name in
               ("LivechatSessionStart.json", "Message.json", "Message.json", "Message.crmdata_text.json",
                "LivechatSession.json", "LivechatEdit.json")}
    assert len(replies) == 1


def test_the_crm_data_later_webhooks_echo_is_our_reply_for_the_room(rocket):
    reply = post(rocket, "Message.json")
    assert body_of("Message.crmdata_text.json")["crmData"].encode() == reply.data
    assert body_of("Message.crmdata_object.json")["crmData"] == reply.get_json()["data"]  # servers before 2023


def test_a_room_id_with_a_lone_surrogate_is_echoed_escaped_as_it_came(rocket):
    """JSON's "\\ud800" is not UTF-8 text: the reply carries it escaped, where encoding it raw failed with a 500."""
    body = json.dumps(changed("LivechatSessionStart.json", _id="room-\ud800")).encode()  # ensure_ascii: escaped
    responses = [post(rocket, body) for _ in range(2)]
    assert [response.status_code for response in responses] == [200, 200]
    assert responses[0].data.strip() == b'{"ok":true,"data":{"conversation_id":"rocketchat:room-\\ud800"}}'
    assert [event.duplicate_count for event in rocket.events()] == [1]


def test_an_offline_message_has_no_room_and_is_answered_with_a_plain_ok(rocket):
    response = post(rocket, "LivechatOfflineMessage.json")
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}


def test_an_unparseable_body_is_acknowledged_stored_and_goes_dead_with_the_reason(rocket):
    response = post(rocket, b'{"type": "Message", "_id": ')
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}
    (event,) = rocket.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "not valid JSON" in event.error_message


def test_an_unknown_type_is_stored_and_goes_dead_naming_the_type(rocket):
    assert post(rocket, changed("Message.json", type="LivechatSessionArchived")).status_code == 200
    (event,) = rocket.process_all()
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "'LivechatSessionArchived'" in event.error_message


def test_a_malformed_visitor_goes_dead_naming_the_field(rocket):
    post(rocket, changed("Message.json", visitor="guest-3"))
    (event,) = rocket.process_all()
    assert event.status == "dead"
    assert "visitor" in event.error_message


def test_a_room_event_without_a_room_id_goes_dead(rocket):
    post(rocket, changed("LivechatSession.json", _id=""))
    (event,) = rocket.process_all()
    assert event.status == "dead"
    assert "room _id" in event.error_message


# --- redeliveries: Rocket.Chat retries with the same body, carries no delivery id -----------------------------------

def test_a_retried_delivery_is_stored_once_and_counted(rocket):
    for _ in range(3):
        assert post(rocket, "Message.json").status_code == 200
    (event,) = rocket.process_all()
    assert event.duplicate_count == 2
    assert event.status == "processed"


def test_a_retried_delivery_gets_the_first_deliverys_reply(rocket):
    first, again = post(rocket, "LivechatSession.json"), post(rocket, "LivechatSession.json")
    assert first.status_code == again.status_code == 200
    assert first.data == again.data


@pytest.mark.parametrize("name", [n for n in ALL_SAMPLES if not n.startswith("LivechatOfflineMessage")])
def test_the_echoed_crm_data_does_not_change_the_dedup_key(name):
    assert key(changed(name, crmData="anything we replied before")) == key(changed(name, crmData={"a": 1})) \
        == key({k: v for k, v in body_of(name).items() if k != "crmData"})


def test_a_new_message_in_the_room_is_a_new_event():
    other = body_of("Message.json")
    other["messages"][0]["_id"] = "n3wMsg1d2e3f4g5h6"
    assert key(other) != key(body_of("Message.json"))


def test_an_edited_message_is_a_new_event():
    assert key(body_of("Message.edited.json")) != key(body_of("Message.json"))


def test_each_type_is_its_own_event_even_with_the_same_room_and_messages():
    assert len({key(body_of(name)) for name in ("LivechatSessionStart.json", "LivechatSessionQueued.json")}) == 2


def test_queued_again_for_another_department_is_a_new_event():
    again = changed("LivechatSessionQueued.json", departmentId="Sa1esDeptX9k2Lm4N")
    assert key(again) != key(body_of("LivechatSessionQueued.json"))


def test_a_close_is_identified_by_its_closing_time():
    later_view = changed("LivechatSession.json", lastMessageAt="2023-02-02T10:30:00.000Z", tags=["self", "vip"])
    assert key(later_view) == key(body_of("LivechatSession.json"))
    assert key(changed("LivechatSession.json", closedAt="2023-02-03T08:00:00.000Z")) != key(later_view)


def test_taken_by_another_agent_is_a_new_event():
    other = changed("LivechatSessionTaken.json", servedBy={"_id": "Bq3kLmN8pQr5sTuVw", "username": "user2",
                                                          "ts": "2023-02-02T10:16:07.375Z"})
    assert key(other) != key(body_of("LivechatSessionTaken.json"))


def test_the_same_agent_taking_the_room_again_later_is_a_new_event():
    again = changed("LivechatSessionTaken.json", servedBy={"_id": "aXjjcPwq4Pcp7xftH", "username": "user1",
                                                          "ts": "2023-02-02T10:40:00.000Z"})
    assert key(again) != key(body_of("LivechatSessionTaken.json"))


def test_a_forward_to_a_department_differs_from_a_forward_to_an_agent():
    assert key(body_of("LivechatSessionForwarded.department.json")) != key(body_of("LivechatSessionForwarded.json"))


def test_room_info_saved_unchanged_is_the_same_edit_and_a_real_edit_is_new():
    assert key(changed("LivechatEdit.json", lastMessageAt="2023-02-02T10:23:11.437Z")) == key(
        body_of("LivechatEdit.json"))
    assert key(body_of("LivechatEdit.second_edit.json")) != key(body_of("LivechatEdit.json"))


def test_a_repeated_lead_capture_of_the_same_contacts_is_one_event():
    repeated = changed("LeadCapture.json", lastMessageAt="2024-03-13T08:09:30.000Z")
    assert key(repeated) == key(body_of("LeadCapture.json"))


def test_a_lead_capture_with_a_new_phone_is_a_new_event():
    assert key(body_of("LeadCapture.new_phone.json")) != key(body_of("LeadCapture.json"))


def test_an_offline_message_is_identified_by_visitor_text_and_sending_time():
    first = body_of("LivechatOfflineMessage.json")
    sent_again_later = changed("LivechatOfflineMessage.json", sentAt="2016-06-01T20:10:00.000Z")
    other_text = changed("LivechatOfflineMessage.json", message="another question")
    assert len({key(first), key(sent_again_later), key(other_text)}) == 3


@pytest.mark.parametrize("body", [b"", b"\xff\xfe", b"[1, 2]", b'"text"', b'{"type": "Message"}',
                                  b'{"type": ["Message"], "_id": "Tc5SyBZHovD4k8BXv"}'])
def test_a_body_we_cannot_read_still_gets_a_key(body):
    assert key(body).startswith("sha256:")


# --- parsing: one record per event, the right kind and state ---------------------------------------------------------

@pytest.mark.parametrize(("name", "kind", "state"), [
    ("LivechatSessionStart.json", InteractionKind.CHAT, ConversationState.OPEN),
    ("LivechatSessionQueued.json", InteractionKind.CHAT, ConversationState.QUEUED),
    ("LivechatSessionTaken.json", InteractionKind.CHAT, ConversationState.ASSIGNED),
    ("LivechatSessionForwarded.json", InteractionKind.CHAT, ConversationState.ASSIGNED),
    ("LivechatSession.json", InteractionKind.CHAT, ConversationState.CLOSED),
    ("LivechatEdit.json", InteractionKind.CHAT, ConversationState.CLOSED),
    ("Message.json", InteractionKind.MESSAGE, None),
    ("LeadCapture.json", InteractionKind.CONTACT_UPDATE, None),
    ("LivechatOfflineMessage.json", InteractionKind.OFFLINE_MESSAGE, None),
])
def test_each_type_maps_to_its_kind_and_state(name, kind, state):
    interaction = record(name).interaction
    assert (interaction.kind, interaction.state, interaction.provider) == (kind, state, "rocketchat")


@pytest.mark.parametrize("name", [n for n in ALL_SAMPLES if not n.startswith("LivechatOfflineMessage")])
def test_every_room_event_carries_the_room_as_conversation_id(name):
    assert record(name).interaction.conversation_id == f"rocketchat:{body_of(name)['_id']}"


def test_the_visitor_becomes_a_person_with_visitor_id_and_token_identities():
    person = record("LivechatSession.json").person
    assert person.name == "James"
    assert person.emails == ["abc.xyz+local-on@rocket.chat"]
    assert {(i.kind, i.value) for i in person.identities} == {
        ("rocketchat.visitor_id", "63db8d4990fe6eda42ad429a"),
        ("rocketchat.visitor_token", "e36e352c742eee48860d576fcefb372afc44ebc95750fa1e3b646195f702341a")}


def test_email_and_phone_arrays_of_objects_are_read():
    person = record("LeadCapture.new_phone.json").person
    assert person.emails == ["anna.smirnova@example.ru"]
    assert person.phones == ["8 (916) 123-45-67", "+7 916 765-43-21 доб. 12"]


def test_scalar_email_and_phone_of_older_servers_are_read_as_written():
    person = record("LivechatSession.scalar_contacts.json").person
    assert person.emails == ["petr.ivanov@example.com"]
    assert person.phones == ["+7 (495) 123-45-67 доб. 204"]
    assert person.name == "Пётр Иванов"


def test_the_send_test_sample_is_acknowledged_and_ignored_saying_what_was_read(rocket):
    response = post(rocket, "webhook_test.json", headers=recorded_headers("webhook_test"))
    assert response.status_code == 200
    (event,) = rocket.process_all()
    assert event.status == "ignored"
    assert "Send Test" in event.error_message
    assert "['email@address.com'] ['192873192873'] with 2 messages" in event.error_message


def test_the_send_test_sample_reads_scalar_contacts_and_skips_the_empty_visitor_id():
    with pytest.raises(IgnoreEvent):
        record("webhook_test.json")
    person = room_record(RoomEvent.model_validate(body_of("webhook_test.json"))).person
    assert (person.emails, person.phones, person.identities) == (["email@address.com"], ["192873192873"], [])


def test_empty_strings_nulls_and_missing_keys_are_absence():
    parsed = record("LivechatSession.empty_fields.json")
    assert parsed.person.name is None and parsed.person.emails == [] and parsed.person.phones == []
    assert parsed.person.attributes == {"username": "guest-77"}
    interaction = parsed.interaction
    assert (interaction.subject, interaction.agent, interaction.tags) == (None, None, [])
    assert interaction.extra == {"created_at": "2021-11-05T16:40:03.120000+00:00", "closer": "visitor",
                                 "closed_by": "617d5e3a9c1b2a0012f4c8e1"}
    assert [m.text for m in interaction.transcript] == [""]


def test_the_close_carries_the_full_transcript_with_authors_and_the_agent():
    # Some releases never send LivechatSessionTaken: the close alone must say who served the room.
    interaction = record("LivechatSession.json").interaction
    assert [(m.author, m.text) for m in interaction.transcript] == [
        ("visitor", "Hi"), ("agent", "How can I help you today?"), ("visitor", "don't worry,thank you"),
        ("agent", "Thank you for visiting")]
    assert (interaction.agent.id, interaction.agent.name) == ("aXjjcPwq4Pcp7xftH", "User One")
    assert interaction.occurred_at.isoformat() == "2023-02-02T10:23:11.344000+00:00"
    assert interaction.extra["closing_comment"] == "Thank you for visiting"
    assert interaction.tags == ["self"]


def test_a_message_author_is_told_by_agent_id_and_visitor_id():
    agent_message = record("Message.json").interaction
    visitor_message = record("Message.visitor.json").interaction
    assert [m.author for m in agent_message.transcript] == ["agent"]
    assert agent_message.agent.id == "aXjjcPwq4Pcp7xftH"
    assert [m.author for m in visitor_message.transcript] == ["visitor"]
    assert visitor_message.external_id == "m9KpQ2rS4tU6vW8xY"


def test_a_visitor_message_keeps_cyrillic_text_and_the_phone_with_its_extension():
    parsed = record("Message.visitor.json")
    assert parsed.interaction.transcript[0].text.startswith("Здравствуйте! Мой телефон +7 (916) 123-45-67 доб. 204")
    assert parsed.person.phones == ["+7 (916) 123-45-67 доб. 204"]
    assert parsed.person.attributes["custom_fields"] == {"city": "Москва"}


def test_a_message_of_ui_blocks_becomes_the_text_in_its_blocks():
    (message,) = record("Message.blocks.json").interaction.transcript
    assert (message.author, message.text) == ("agent", "Выберите тему обращения:\nДоставка\nОплата")


def test_a_file_upload_becomes_a_file_line_and_a_link_in_extra():
    interaction = record("Message.file.json").interaction
    assert interaction.transcript[0].text == "File: чек-заказ-1187.pdf\nЧек по заказу 1187"
    (upload,) = interaction.extra["files"]
    assert upload["url"].startswith("https://chat.shop.example.ru/file-upload/Kx3Pq8Rt2Lm5Nz7Wd/")
    assert (upload["type"], upload["size"]) == ("application/pdf", 48211)


def test_an_edited_message_keeps_its_id_and_is_marked_edited():
    interaction = record("Message.edited.json").interaction
    assert interaction.external_id == "7xjkw8ZFitMSNGmeJ"
    assert interaction.extra["edited_message"] is True
    assert interaction.occurred_at.isoformat() == "2023-02-02T10:21:48.902000+00:00"


def test_a_closing_message_is_marked_with_its_comment():
    interaction = record("Message.closing.json").interaction
    assert interaction.extra["closing_comment"] == "Перезвонили клиенту, заказ 1187 доставим завтра"


def test_navigation_history_sets_the_page_and_stays_out_of_the_transcript():
    interaction = record("Message.navigation.json").interaction
    assert interaction.transcript == []
    assert (interaction.page.url, interaction.page.title) == (
        "https://shop.example.ru/catalog/divany?utm_source=yandex", "Диваны — каталог")


def test_a_forward_to_an_agent_names_the_new_and_the_previous_agent():
    interaction = record("LivechatSessionForwarded.json").interaction
    assert (interaction.agent.id, interaction.agent.name) == ("Bq3kLmN8pQr5sTuVw", "User Two")
    assert interaction.extra["previous_agent_id"] == "aXjjcPwq4Pcp7xftH"


def test_a_forward_to_a_department_records_both_departments():
    interaction = record("LivechatSessionForwarded.department.json").interaction
    assert interaction.agent is None
    assert (interaction.extra["department_id"], interaction.extra["previous_department_id"]) == (
        "Sa1esDeptX9k2Lm4N", "fcd3yPyZ8J7ouWETL")


def test_an_edit_updates_tags_topic_and_custom_fields_of_the_closed_chat():
    interaction = record("LivechatEdit.second_edit.json").interaction
    assert interaction.state is ConversationState.CLOSED
    assert interaction.subject == "Оплата заказа 1187 — возврат средств"
    assert interaction.tags == ["self", "billing", "refund"]
    assert interaction.extra["custom_fields"] == {"orderId": "1187"}


def test_a_lead_capture_is_a_contact_update_without_a_transcript():
    parsed = record("LeadCapture.json")
    assert parsed.interaction.transcript == []
    assert parsed.person.name == "Анна Смирнова"
    assert parsed.person.phones == ["8 (916) 123-45-67"]


def test_an_offline_message_has_no_conversation_and_keeps_the_form_text():
    parsed = record("LivechatOfflineMessage.cyrillic.json")
    assert (parsed.person.name, parsed.person.emails) == ("Дмитрий", ["dmitry.p@example.ru"])
    assert parsed.interaction.conversation_id is None
    (message,) = parsed.interaction.transcript
    assert message.author == "visitor"
    assert message.text == "Добрый вечер!\nНужна консультация по рассрочке.\nТелефон: 8 (916) 555-12-34"


@pytest.mark.parametrize("kind", ["Something", None, ["Message"]])
def test_an_unknown_type_is_a_parse_error_listing_the_known_ones(kind):
    with pytest.raises(ParseError, match="LivechatSessionStart"):
        record(changed("Message.json", type=kind))


# --- out of order: each event stands on its own ----------------------------------------------------------------------

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
