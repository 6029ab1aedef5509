"""Rocket.Chat Omnichannel webhooks (tests/payloads/rocketchat/) → canonical records: one record per event, the
right kind and state, the visitor as a person, transcripts, forwards, edits, lead captures and offline messages.
"""
from __future__ import annotations

import pytest

from crm_sync.model import ConversationState, InteractionKind
from ingest.providers import ParseError
from ingest.providers.base import IgnoreEvent
from ingest.providers.rocketchat.payload import RoomEvent
from ingest.providers.rocketchat.records import room_record
from tests.providers.rocketchat_support import ALL_SAMPLES, body_of, changed, post, record, recorded_headers


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
    assert "read as visitor name, email@address.com, 192873192873 with 2 messages" in event.error_message


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


def test_a_body_without_a_type_is_a_parse_error_saying_the_field_is_missing():
    body = {key: value for key, value in body_of("Message.json").items() if key != "type"}
    with pytest.raises(ParseError, match="^the body has no `type` field") as raised:
        record(body)
    assert "None" not in str(raised.value)


def test_a_type_that_is_not_text_is_named_in_jsons_words():
    with pytest.raises(ParseError, match="^the body's `type` is null, not text; known types: "):
        record(changed("Message.json", type=None))
    with pytest.raises(ParseError, match="^the body's `type` is an array, not text; known types: "):
        record(changed("Message.json", type=["Message"]))


def test_an_unknown_type_is_quoted_in_the_reason():
    with pytest.raises(ParseError, match="^unknown Rocket.Chat webhook type 'LivechatTranscript'; known types: "):
        record(changed("Message.json", type="LivechatTranscript"))


def test_a_field_of_the_wrong_shape_is_named_in_jsons_words():
    with pytest.raises(ParseError, match="expected an array, got an object"):
        record(changed("Message.json", messages={"msg": "hello"}))
