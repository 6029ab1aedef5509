"""JivoChat over HTTP: the secret URL, `{"result":"ok"}` replies, the contact card, dedup, and processing.

Every test here runs on the embedded SQLite default and on PostgreSQL (the `database_url` parametrisation).
What each payload means is specified in test_jivo_records.py.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from pydantic import SecretStr
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text

from crm_sync.contacts import ContactCard, InteractionSummary
from ingest.db import migrate
from ingest.providers import AuthenticationFailed, RawRequest, get_provider
from ingest.providers.jivo import JivoSettings
from ingest.providers.jivo.card import card_reply
from ingest.runtime import Runtime
from ingest.settings import ConfigError, settings_from_dict
from tests.conftest import GENERIC_TOKEN, make_client, payload

SECRET = "jivo-url-secret-for-tests-0123456789"
URL = f"/hooks/jivo-main/{SECRET}"
JSON = {"Content-Type": "application/json"}
OK = {"result": "ok"}
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


@pytest.fixture
def jivo(provider_harness):
    return provider_harness({"jivo-main": {"provider": "jivo", "url_secret": SECRET}})


def post(harness, body: bytes | dict, url: str = URL):
    data = json.dumps(body, ensure_ascii=False).encode() if isinstance(body, dict) else body
    return harness.client.post(url, data=data, headers=JSON)


def sample(name: str) -> dict:
    return json.loads(payload(f"jivo/{name}"))


# --- the secret URL is the credential -------------------------------------------------------------------------------

def test_a_jivo_source_without_url_secret_is_refused_at_start_up():
    with pytest.raises(ConfigError, match="sources.jivo-main: a jivo source needs url_secret"):
        settings_from_dict({"sources": {"jivo-main": {"provider": "jivo"}}}, env={})


def test_the_starter_source_is_a_valid_jivo_source_with_a_url_secret():
    section = get_provider("jivo").starter_source("a-fresh-random-token-0123456789")
    source = JivoSettings(name="jivo-main", **section)
    assert source.url_secret.get_secret_value() == "a-fresh-random-token-0123456789"


def test_authentication_fails_closed_for_a_source_that_somehow_has_no_url_secret():
    unvalidated = JivoSettings.model_construct(name="jivo-main", provider="jivo", url_secret=None)
    request = RawRequest("POST", "/hooks/jivo-main", "", {}, payload("jivo/chat_accepted.json"), "application/json")
    with pytest.raises(AuthenticationFailed):
        get_provider("jivo").authenticate(request, unvalidated)
    get_provider("jivo").authenticate(request, JivoSettings.model_construct(
        name="jivo-main", provider="jivo", url_secret=SecretStr(SECRET)))


@pytest.mark.parametrize("url", [f"/hooks/jivo-main/{SECRET[:-1]}x", "/hooks/jivo-main", f"/hooks/jivo-other/{SECRET}"])
def test_a_wrong_or_missing_url_secret_is_not_found_and_not_stored(jivo, url):
    response = post(jivo, payload("jivo/chat_accepted.json"), url=url)
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown_source"
    assert jivo.events() == []


def test_a_get_request_is_refused(jivo):
    response = jivo.client.get(URL)
    assert response.status_code == 405
    assert jivo.events() == []


def test_setup_instructions_name_both_places_to_paste_the_url():
    source = JivoSettings(name="jivo-main", provider="jivo", url_secret=SECRET)
    text = get_provider("jivo").setup_instructions(f"https://ingest.example.com{URL}", source)
    assert f"https://ingest.example.com{URL}" in text
    assert "Integration settings for developers" in text and "CRM Webhooks" in text


# --- replies --------------------------------------------------------------------------------------------------------

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


# --- dedup ----------------------------------------------------------------------------------------------------------

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


# --- the contact card ------------------------------------------------------------------------------------------------

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


def _card(**fields) -> ContactCard:
    return ContactCard(**{"contact_id": 1, "name": "Анна Петрова", "emails": [], "phones": [], "interactions": [],
                          "crm_links": {}, **fields})


def _interaction(id_: int, kind: str, conversation_id: str | None = None, subject: str | None = None):
    moment = datetime(2024, 5, id_ % 28 + 1, 9, 30, tzinfo=timezone.utc)
    return InteractionSummary(id=id_, contact_id=1, event_id=id_, kind=kind, provider="jivo", source="jivo-main",
                              conversation_id=conversation_id, external_id=None, state=None, subject=subject,
                              occurred_at=moment, updated_at=moment)


def test_the_first_crm_record_is_the_open_in_crm_button_and_enables_assign():
    body = card_reply(_card(crm_links={"hubspot-main": "https://app.hubspot.com/contacts/1/record/0-1/51"}), None)
    assert body["crm_link"] == "https://app.hubspot.com/contacts/1/record/0-1/51"
    assert body["enable_assign"] is True


def test_a_contact_in_several_crms_gets_every_record_as_a_linked_line():
    links = {"amo": "https://amo.example/contacts/5", "hubspot-main": "https://app.hubspot.com/contacts/1/r/51"}
    body = card_reply(_card(crm_links=links), None)
    assert body["crm_link"] == "https://amo.example/contacts/5"
    assert [line for line in body["custom_data"] if line["title"].startswith("CRM")] == [
        {"title": "CRM: amo", "content": links["amo"], "link": links["amo"]},
        {"title": "CRM: hubspot-main", "content": links["hubspot-main"], "link": links["hubspot-main"]},
    ]


def test_a_phone_with_an_extension_is_shown_readably():
    body = card_reply(_card(phones=["+74951234567;ext=305"], emails=["anna@example.ru"]), None)
    assert body["contact_info"] == {"name": "Анна Петрова", "phone": "+74951234567 ext. 305",
                                    "email": "anna@example.ru"}


def test_a_history_at_the_card_limit_is_counted_as_at_least_that_many_chats():
    history = [_interaction(i, "chat", f"jivo:1:{i}") for i in range(20)]
    body = card_reply(_card(interactions=history), "jivo:1:0")
    assert body["custom_data"][0] == {"title": "Previous chats", "content": "19+"}
