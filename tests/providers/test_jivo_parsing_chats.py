"""JivoChat chat events → canonical records: chat_accepted, chat_updated, chat_assigned and chat_finished, with
the visitor, the agents and the transcript. Pure parsing: no database.
"""
from __future__ import annotations

from datetime import datetime, timezone

from crm_sync.model import ConversationState, InteractionKind
from tests.conftest import payload
from tests.providers.jivo_support import identities, parse_one, sample


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
