"""LiveChat v3.x webhooks (tests/payloads/livechat/) → canonical records: chats, messages, forms, transfers,
tags and session fields, and what is ignored or refused. Pure parsing: no database.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from crm_sync.model import ConversationState, InteractionKind, ProviderIdentity
from ingest.providers.base import IgnoreEvent, ParseError
from tests.providers.livechat_support import CUSTOMER, edited, provider, raw, record, signed


def test_incoming_chat_brings_the_customer_with_session_fields():
    person = record(signed("incoming_chat.json")).person
    assert (person.name, person.emails, person.phones) == \
        ("Thomas Anderson", ["t.anderson@example.com"], ["+18008529001"])
    assert person.identities == [ProviderIdentity(kind="livechat.customer_id", value=CUSTOMER)]
    assert person.attributes == {"custom_key": "custom_value", "another_custom_key": "another_custom_value"}


def test_incoming_chat_is_a_chat_with_transcript_agent_page_geo_and_tags():
    interaction = record(signed("incoming_chat.json")).interaction
    assert (interaction.kind, interaction.conversation_id) == (InteractionKind.CHAT, "livechat:PJ0MRSHTDG:K600PKZON8")
    assert [(m.author, m.text, m.author_name) for m in interaction.transcript] == \
        [("visitor", "Hello there", "Thomas Anderson")]
    assert (interaction.agent.id, interaction.agent.name) == ("smith@example.com", "Agent Smith")
    assert (interaction.page.url, interaction.page.title) == ("https://www.livechat.com/tour", "LiveChat - Tour")
    assert interaction.geo["city"] == "Wroclaw" and interaction.geo["country_code"] == "PL"
    assert interaction.tags == ["sales"]
    assert interaction.extra["prechat"]["Company industry"] == "automotive, it"


def test_incoming_chat_waiting_in_the_queue_is_queued():
    assert record(signed("incoming_chat.json")).interaction.state == ConversationState.QUEUED


def test_incoming_chat_not_in_a_queue_is_open():
    assert record(signed("incoming_chat_cyrillic.json")).interaction.state == ConversationState.OPEN


def test_cyrillic_text_and_free_form_phones_are_kept_as_written():
    chat = record(signed("incoming_chat_cyrillic.json"))
    assert chat.person.name == "Мария Иванова"
    assert chat.person.phones == ["8 (916) 123-45-67", "+7 916 123-45-67 доб. 12"]  # session field, pre-chat question
    assert chat.interaction.transcript[0].text == "Здравствуйте! Есть ли диван «Милан» в сером цвете?"
    assert chat.interaction.geo["city"] == "Москва"


def test_a_customer_without_email_and_a_blank_prechat_email_have_no_email():
    assert record(signed("incoming_chat_cyrillic.json")).person.emails == []


def test_livechat_system_notices_stay_out_of_the_transcript():
    transcript = record(signed("incoming_chat_cyrillic.json")).interaction.transcript
    assert [m.author for m in transcript] == ["visitor", "agent"]


def test_utm_tags_come_from_the_landing_page():
    assert record(signed("incoming_chat_cyrillic.json")).interaction.utm == \
        {"source": "yandex", "medium": "cpc", "campaign": "весна"}


def test_v33_envelope_with_integer_license_id_is_parsed():
    chat = record(signed("incoming_chat_license_id.json"))
    assert chat.interaction.extra["license_id"] == "12345678"
    assert "organization_id" not in chat.interaction.extra


def test_incoming_chat_with_restricted_access_and_a_bare_customer_still_names_the_customer():
    chat = record(signed("incoming_chat_license_id.json"))
    assert chat.person.identities == [ProviderIdentity(kind="livechat.customer_id",
                                                       value="8c1f0a2e-3d4b-4e5f-8a9b-0c1d2e3f4a5b")]
    assert (chat.person.name, chat.interaction.transcript, chat.interaction.page) == (None, [], None)


def test_customer_message_is_a_message_from_the_visitor_in_its_thread():
    message = record(signed("incoming_event_message_next.json"))
    assert (message.interaction.kind, message.interaction.conversation_id) == \
        (InteractionKind.MESSAGE, "livechat:PJ0MRSHTDG:K600PKZON8")
    [line] = message.interaction.transcript
    assert (line.author, line.text, line.external_id) == ("visitor", "Можно оплатить картой? 💳", "K600PKZON8_3")
    assert line.at == datetime(2017, 10, 12, 15, 20, 2, 331000, tzinfo=timezone.utc)
    assert message.person.identities == [ProviderIdentity(kind="livechat.customer_id", value=CUSTOMER)]


def test_agent_message_names_the_agent_and_no_person():
    message = record(signed("incoming_event_agent_message.json"))
    assert message.interaction.transcript[0].author == "agent"
    assert (message.interaction.agent.id, message.interaction.agent.email) == ("smith@example.com",) * 2
    assert message.person.is_empty


def test_a_message_in_incoming_chat_and_its_own_incoming_event_share_the_message_id():
    in_chat = record(signed("incoming_chat.json")).interaction.transcript[0]
    on_its_own = record(signed("incoming_event_message.json")).interaction.transcript[0]
    assert (in_chat.external_id, in_chat.text) == (on_its_own.external_id, on_its_own.text)


def test_file_upload_is_a_message_with_the_file_name_and_link():
    [line] = record(signed("incoming_event_file.json")).interaction.transcript
    assert line.text == "invoice-4411.pdf https://cdn.files-text.com/api/lc/att/12345678/abcdef/invoice-4411.pdf"


def test_system_message_event_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="system_message"):
        provider.parse(raw(signed("incoming_event_system_message.json")))


def test_prechat_form_is_a_contact_update_with_name_email_and_phone():
    form = record(signed("incoming_event_filled_form.json"))
    assert form.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert (form.person.name, form.person.emails, form.person.phones) == \
        ("Иван Петров", ["ivan.petrov@example.ru"], ["8 (916) 765-43-21"])
    assert form.person.identities[0].value == "3e9a7c55-1b2d-4f6e-9a8b-7c6d5e4f3a2b"


def test_prechat_answers_are_kept_and_unanswered_fields_left_out():
    answers = record(signed("incoming_event_filled_form.json")).interaction.extra["answers"]
    assert answers["Company name"] == "ООО «Ромашка»" and answers["Topic"] == "Доставка"
    assert "How can we help?" not in answers


def test_a_company_name_question_is_not_taken_for_the_persons_name():
    assert record(signed("incoming_event_filled_form.json")).person.name == "Иван Петров"


def test_a_question_about_an_iphone_is_not_taken_for_a_phone_number():
    def iphone_question(body):
        body["payload"]["event"]["fields"][2] = {"type": "question", "id": "1", "label": "Your iPhone model",
                                                 "answer": "iPhone 15 Pro 256 GB"}
    assert record(edited("incoming_event_filled_form.json", iphone_question)).person.phones == []


def test_chat_deactivated_closes_the_thread():
    closed = record(signed("chat_deactivated.json"))
    assert (closed.interaction.state, closed.interaction.conversation_id) == \
        (ConversationState.CLOSED, "livechat:PJ0MRSHTDG:K600PKZON8")
    assert closed.interaction.extra["closed_by"] == CUSTOMER


def test_chat_closed_by_the_router_has_no_closing_user():
    closed = record(signed("chat_deactivated_by_router.json"))
    assert closed.interaction.extra["closed_by"] == "router"
    assert closed.person.is_empty and closed.interaction.agent is None


def test_chat_transferred_to_an_agent_is_assigned_to_that_agent():
    transfer = record(signed("chat_transferred.json")).interaction
    assert (transfer.state, transfer.agent.id) == (ConversationState.ASSIGNED, "smith@example.com")
    assert transfer.extra["transfer_reason"] == "manual"


def test_chat_transferred_into_a_group_queue_is_queued():
    transfer = record(signed("chat_transferred_to_queue.json")).interaction
    assert (transfer.state, transfer.agent, transfer.extra["group_ids"]) == (ConversationState.QUEUED, None, ["19"])


def test_transfer_of_an_inactive_chat_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="inactive chat"):
        provider.parse(raw(signed("chat_transferred_inactive.json")))


def test_thread_tagged_adds_the_tag_to_the_thread():
    tagged = record(signed("thread_tagged.json")).interaction
    assert (tagged.kind, tagged.tags, tagged.state) == (InteractionKind.CHAT, ["bug_report"], None)


def test_thread_untagged_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="never removed"):
        provider.parse(raw(signed("thread_untagged.json")))


def test_session_fields_named_like_contacts_update_the_contact():
    update = record(signed("customer_session_fields_updated_contacts.json"))
    assert update.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert (update.person.name, update.person.emails, update.person.phones) == \
        ("Анна Кузнецова", ["anna.k@example.com"], ["+7 (921) 555-01-02"])
    assert update.person.attributes["plan"] == "premium"


def test_session_fields_update_is_not_tied_to_one_of_the_chats():
    # It is kept once for all the customer's active chats, so naming the first copy's chat would mislead.
    assert record(signed("customer_session_fields_updated_contacts.json")).interaction.conversation_id is None


def test_unknown_v3_action_is_ignored_with_a_reason():
    with pytest.raises(IgnoreEvent, match="routing_status_set"):
        provider.parse(raw(signed("routing_status_set.json")))


def test_incoming_chat_without_a_chat_is_a_parse_error():
    with pytest.raises(ParseError, match="payload.chat.id"):
        provider.parse(raw(edited("incoming_chat.json", lambda body: body["payload"].pop("chat"))))


def test_non_object_payload_is_a_parse_error():
    with pytest.raises(ParseError, match="payload"):
        provider.parse(raw(edited("thread_tagged.json", lambda body: body.update(payload=["bug_report"]))))


def test_values_of_unexpected_types_are_tolerated():
    def odd_types(body):
        customer = body["payload"]["chat"]["users"][0]
        customer.update(name=None, email=["x"], phone_number=79161234567, session_fields="oops", visit=[])
        body["payload"]["chat"]["thread"].update(tags=None, events={"not": "a list"})
    chat = record(edited("incoming_chat.json", odd_types))
    assert (chat.person.name, chat.person.emails, chat.person.phones) == (None, [], ["79161234567"])
    assert (chat.interaction.transcript, chat.interaction.tags) == ([], [])
