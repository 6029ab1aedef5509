"""The generic JSON webhook: what makes a request a record, and what it ends as when it is not one.

A request is recorded when it names a person (`email`/`emails`, `phone`/`phones`, `name` or `id`) or the
interaction it belongs to (`conversation_id`, `event_id`), which joins it to that interaction's contact. One that
names neither is acknowledged and ends `ignored` with the reason: recording it would make an anonymous contact of its
own, one more for every probe or junk query string.

Through the real app and processing, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import pytest

from tests.conftest import GENERIC_TOKEN

HOOK = "/hooks/generic-main"
SOURCES = {"generic-main": {"provider": "generic", "token": GENERIC_TOKEN}}
BEARER = {"Authorization": f"Bearer {GENERIC_TOKEN}"}
NOBODY = ("no person in the request: none of email, emails, phone, phones, name or id, and no conversation_id or "
          "event_id to attach it to; acknowledged, recorded nowhere")
# What a website's contact form posts.
LEAD = {"type": "form_submitted", "kind": "lead", "name": "Анна Смирнова", "email": "anna.smirnova@example.ru",
        "phone": "+7 916 123-45-67", "subject": "Угловой диван, расчёт доставки", "event_id": "form-2041"}


@pytest.fixture
def harness(provider_harness):
    return provider_harness(SOURCES)


def only_event(harness):
    [event] = harness.process_all()
    return event


def test_a_lead_naming_its_person_is_processed_into_their_contact(harness):
    assert harness.client.post(HOOK, json=LEAD, headers=BEARER).status_code == 200
    assert only_event(harness).status == "processed"
    [contact] = harness.contacts()
    assert contact.name == "Анна Смирнова"


def test_a_get_with_only_the_token_is_ignored_and_makes_no_contact(harness):
    assert harness.client.get(HOOK, headers=BEARER).status_code == 200
    event = only_event(harness)
    assert (event.status, event.error_class, event.error_message) == ("ignored", "ignored", NOBODY)
    assert harness.contacts() == []


def test_junk_query_strings_make_no_contacts(harness):
    for junk in ("utm_source=yandex", "ping=1", "x=%D0%B0"):
        harness.client.get(HOOK, query_string=junk, headers=BEARER)
    assert {event.status for event in harness.process_all()} == {"ignored"}
    assert harness.contacts() == []


def test_a_json_body_naming_no_person_is_ignored(harness):
    harness.client.post(HOOK, json={"type": "ping", "kind": "note"}, headers=BEARER)
    assert (only_event(harness).status, harness.contacts()) == ("ignored", [])


def test_a_message_text_without_anyone_to_attach_it_to_is_ignored(harness):
    """`subject` describes the interaction, and the generic provider reads no `text`: neither says who wrote it."""
    body = {"type": "message", "kind": "message", "subject": "Перезвоните мне", "text": "Жду звонка после 18:00"}
    harness.client.post(HOOK, json=body, headers=BEARER)
    assert (only_event(harness).status, harness.contacts()) == ("ignored", [])


def test_blank_person_fields_name_nobody(harness):
    body = {"type": "lead", "email": "", "emails": [" "], "phone": " ", "name": "  ", "id": ""}
    harness.client.post(HOOK, json=body, headers=BEARER)
    event = only_event(harness)
    assert (event.status, event.error_message) == ("ignored", NOBODY)


@pytest.mark.parametrize("field, value", [
    ("email", "anna.smirnova@example.ru"), ("emails", ["anna.smirnova@example.ru"]), ("phone", "8 (916) 123-45-67"),
    ("phones", ["+7 916 123-45-67"]), ("name", "Анна"), ("id", 2041),
])
def test_any_one_person_field_is_enough(harness, field, value):
    harness.client.post(HOOK, json={"type": "lead", field: value}, headers=BEARER)
    assert only_event(harness).status == "processed"
    assert len(harness.contacts()) == 1


def test_a_message_naming_only_its_conversation_joins_that_conversations_contact(harness):
    harness.client.post(HOOK, json={"type": "chat_started", "kind": "chat", "conversation_id": "chat-77",
                                    "email": "anna.smirnova@example.ru"}, headers=BEARER)
    harness.client.post(HOOK, json={"type": "message", "kind": "message", "conversation_id": "chat-77",
                                    "subject": "А доставка в Химки есть?"}, headers=BEARER)
    assert [event.status for event in harness.process_all()] == ["processed", "processed"]
    assert len(harness.contacts()) == 1


def test_an_unknown_kind_is_quoted_in_the_reason(harness):
    harness.client.post(HOOK, json={**LEAD, "kind": "deal"}, headers=BEARER)
    event = only_event(harness)
    assert (event.status, event.error_message) == (
        "dead", "unknown kind 'deal'; one of chat, message, offline_message, lead, call, ticket, contact_update, note")


def test_a_field_that_is_an_object_is_named_in_jsons_words(harness):
    harness.client.post(HOOK, json={**LEAD, "name": {"first": "Анна"}}, headers=BEARER)
    event = only_event(harness)
    assert (event.status, event.error_message) == ("dead", "name must be text or a number, not an object")
