"""The JivoChat contact card: chat_accepted and chat_updated about a visitor the contact store knows are answered
with the visitor's card, found by any identity, in a few queries, and a failing look-up still answers ok.

Every test here runs on the embedded SQLite default and on PostgreSQL (the `database_url` parametrisation),
unless it says otherwise.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text

from ingest.db import migrate
from ingest.runtime import Runtime
from tests.conftest import GENERIC_TOKEN, make_client, payload
from tests.providers.jivo_support import JSON, OK, SECRET, URL, post, sample


def known_visitor(harness, *names: str) -> None:
    """Earlier events about the visitor, processed into the contact store as the worker would."""
    for name in names:
        post(harness, payload(f"jivo/{name}"))
    harness.process_all()


def name_on_the_card_after(harness, body: bytes | dict) -> str:
    """Post a finished chat, process it (it must end processed), and read the name the next chat's card shows."""
    post(harness, body)
    [event] = harness.process_all()
    assert (event.status, event.error_message) == ("processed", None)
    return post(harness, payload("jivo/chat_accepted.json")).get_json()["contact_info"]["name"]


def test_a_nul_in_a_visitors_name_and_chat_id_is_dropped_and_the_event_processed(jivo):
    body = sample("chat_finished.json")
    body["chat_id"], body["visitor"]["name"] = "76\u000036", "John\u0000 Smith"
    assert name_on_the_card_after(jivo, body) == "John Smith"


def test_control_characters_in_a_visitors_name_are_dropped_and_the_event_processed(jivo):
    body = sample("chat_finished.json")
    body["visitor"]["name"] = "John\u001b[2J \u0007Smith\u007f"
    assert name_on_the_card_after(jivo, body) == "John[2J Smith"


def test_a_lone_surrogate_in_a_visitors_name_becomes_the_replacement_character(jivo):
    body = sample("chat_finished.json")
    body["visitor"]["name"] = "John\ud800 Smith"
    # ensure_ascii: the surrogate travels escaped, as JSON allows
    assert name_on_the_card_after(jivo, json.dumps(body).encode()) == "John\ufffd Smith"


def test_a_chat_accepted_for_a_known_visitor_gets_the_contact_card(jivo):
    known_visitor(jivo, "chat_finished.json")
    response = post(jivo, payload("jivo/chat_accepted.json"))
    assert response.get_json() == {
        "result": "ok",
        "contact_info": {"name": "John Smith", "phone": "+14084987855", "email": "email@example.com"},
        "custom_data": [
            {"title": "Previous chats", "content": "1"},
            {"title": "Last contact", "content": "Topic_1, chat via jivo, 2022-10-10 10:07 UTC"},
        ],
        "enable_assign": False,
    }


def test_chat_updated_also_gets_the_contact_card(jivo):
    known_visitor(jivo, "chat_finished.json")
    card = post(jivo, payload("jivo/chat_updated.json")).get_json()
    assert card["contact_info"]["email"] == "email@example.com"
    assert card["custom_data"][0] == {"title": "Previous chats", "content": "1"}


def test_other_events_about_a_known_visitor_get_the_plain_acknowledgement(jivo):
    known_visitor(jivo, "chat_finished.json")
    for name in ("chat_finished.json", "offline_message.json", "call_event.json", "chat_assigned.json"):
        assert post(jivo, payload(f"jivo/{name}")).get_json() == OK


def visitor_chat(name: str, email: str, number: str, user_token: str | None, chat_id: int) -> dict:
    body = sample("chat_accepted.json")
    body["visitor"] = {**body["visitor"], "name": name, "email": email, "phone": "", "number": number}
    return {**body, "chat_id": chat_id, "user_token": user_token}


def test_two_visitors_whose_site_passed_the_same_user_token_keep_their_own_contacts_and_cards(jivo):
    shared = "https://shop.example/account"
    post(jivo, visitor_chat("Anna", "anna@example.ru", "1001", shared, 1))
    jivo.process_all()
    card = post(jivo, visitor_chat("Boris", "boris@example.ru", "1002", shared, 2)).get_json()
    jivo.process_all()
    assert card == OK
    assert len(jivo.contacts()) == 2


def test_client_events_find_the_contact_that_chats_made_by_its_visitor_number(jivo):
    post(jivo, visitor_chat("Anna", "anna@example.ru", "1217", None, 1))
    post(jivo, {**sample("client_attribute_updated.json"), "client_id": 1217})
    events = jivo.process_all()
    assert [event.status for event in events] == ["processed", "processed"]
    [contact] = jivo.contacts()
    assert contact.name == "Anna"


def test_the_chat_being_answered_is_not_counted_among_the_previous_chats(jivo):
    known_visitor(jivo, "chat_finished.json", "chat_updated.json")
    card = post(jivo, payload("jivo/chat_updated_contacts_entered.json")).get_json()
    assert card["custom_data"][0] == {"title": "Previous chats", "content": "1"}
    assert card["custom_data"][1]["content"].startswith("Topic_1, chat via jivo")


def test_a_visitor_known_only_by_the_jivo_client_number_gets_the_card(jivo):
    known_visitor(jivo, "client_updated.json")
    body = {"event_name": "chat_accepted", "widget_id": "12345678", "chat_id": 1, "visitor": {"number": 1217}}
    card = post(jivo, body).get_json()
    # +458745457845 is not a valid number anywhere, so the store keeps it as written but cannot offer it.
    assert card["contact_info"] == {"name": "Thomas", "email": "thomas@gmail.com"}
    assert card["custom_data"][0] == {"title": "Previous chats", "content": "0"}


def test_a_visitor_known_by_a_phone_written_another_way_gets_the_card(jivo):
    known_visitor(jivo, "chat_finished_cyrillic_two_agents.json")
    body = {"event_name": "chat_accepted", "widget_id": "3948", "chat_id": 8000,
            "visitor": {"name": "Аня", "phone": "8 (916) 123-45-67", "number": "9999"}}
    card = post(jivo, body).get_json()
    assert card["contact_info"]["name"] == "Анна Петрова"
    assert card["contact_info"]["phone"] == "+79161234567"


def test_a_redelivered_chat_accepted_gets_the_same_card(jivo):
    known_visitor(jivo, "chat_finished.json")
    first = post(jivo, payload("jivo/chat_accepted.json")).get_json()
    again = post(jivo, payload("jivo/chat_accepted.json")).get_json()
    assert first == again and "contact_info" in first


def test_the_card_shows_the_last_lead_from_any_provider(jivo):
    lead = {"kind": "lead", "email": "email@example.com", "subject": "Угловой диван", "event_id": "L-17"}
    jivo.client.post("/hooks/generic-main", json=lead, headers={"Authorization": f"Bearer {GENERIC_TOKEN}"})
    known_visitor(jivo, "chat_finished.json")
    card = post(jivo, payload("jivo/chat_accepted.json")).get_json()
    [last_lead] = [line["content"] for line in card["custom_data"] if line["title"] == "Last lead"]
    assert last_lead.startswith("Угловой диван, lead via generic, ")


def test_a_chat_without_a_subject_reads_as_its_kind_and_provider(jivo):
    chat = json.loads(payload("jivo/chat_finished.json"))
    chat.pop("topic")
    post(jivo, chat)
    jivo.process_all()
    card = post(jivo, payload("jivo/chat_accepted.json")).get_json()
    [last_contact] = [line["content"] for line in card["custom_data"] if line["title"] == "Last contact"]
    assert last_contact.startswith("chat via jivo, ")


# Counted on SQLite, where the card's statements run through SQLAlchemy and its events see them; on PostgreSQL the
# same prebuilt statements run as prepared statements on a kept connection, which no SQLAlchemy event sees.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_card_costs_the_same_few_queries_however_long_the_history(jivo):
    known_visitor(jivo, "chat_finished.json")
    short_history = _reads_while(jivo, lambda: post(jivo, payload("jivo/chat_accepted.json")))
    for chat_id in range(9000, 9010):
        post(jivo, {**json.loads(payload("jivo/chat_finished.json")), "chat_id": chat_id})
    jivo.process_all()
    long_history = _reads_while(jivo, lambda: post(jivo, payload("jivo/chat_updated.json")))
    assert 1 <= len(long_history) == len(short_history) <= 5


def _reads_while(harness, action) -> list[str]:
    reads: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            reads.append(statement)

    sqlalchemy_event.listen(harness.runtime.engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        sqlalchemy_event.remove(harness.runtime.engine, "before_cursor_execute", count)
    return reads


def test_a_failing_card_look_up_still_answers_result_ok(tmp_path, make_settings):
    database_url = f"sqlite:///{tmp_path}/broken-store.db"
    migrate(database_url)
    runtime = Runtime(make_settings(database_url, sources={"jivo-main": {"provider": "jivo", "url_secret": SECRET}}))
    try:
        with runtime.engine.begin() as connection:
            connection.execute(text("DROP TABLE contact_identities"))
        response = make_client(runtime).post(URL, data=payload("jivo/chat_accepted.json"), headers=JSON)
        assert (response.status_code, response.get_json()) == (200, OK)
    finally:
        runtime.close()
