"""Pipedrive persons, notes and leads: a new person with the conversation as a note, a lead carrying our key, a
person found by a phone written another way, and the linked record used (or replaced) without a search.
"""
from __future__ import annotations

from crm_sync.destinations.content import marker
from tests.destinations.builders import contact, delivery, lead


def test_a_new_person_becomes_a_person_with_the_conversation_as_a_note(pipedrive, pipedrive_fake):
    result = pipedrive.deliver(delivery(key="k-1"))

    (person,) = pipedrive_fake.persons_with(email="ivan@example.com")
    assert person["name"] == "Ivan Petrov"
    assert person["phones"] == [{"value": "+79161234567", "primary": True, "label": "work"}]
    (note,) = pipedrive_fake.notes_of(person["id"])
    assert "Hello, is the blue one in stock?" in note["content"] and marker("k-1") in note["content"]
    assert (result.contact_record_id, result.interaction_record_id) == (str(person["id"]), str(note["id"]))
    assert result.record_url == f"{pipedrive_fake.url}/person/{person['id']}"


def test_a_lead_becomes_a_pipedrive_lead_carrying_our_key_with_its_note(pipedrive, pipedrive_fake):
    result = pipedrive.deliver(delivery(interaction=lead(), key="k-lead"))

    (person,) = pipedrive_fake.persons_with(email="ivan@example.com")
    (created,) = pipedrive_fake.leads_of(person["id"])
    assert (created["origin_id"], created["title"]) == ("k-lead", "Lead (roistat): Callback request")
    (note,) = pipedrive_fake.notes_of(person["id"])
    assert note["lead_id"] == created["id"] and "Call me after 6 pm" in note["content"]
    assert result.interaction_record_id == created["id"]


def test_a_person_known_by_a_differently_written_phone_is_found_and_gets_the_email(pipedrive, pipedrive_fake):
    existing = pipedrive_fake.seed_person("Ivan", phones=["8 (916) 123-45-67"])

    result = pipedrive.deliver(delivery())

    assert result.contact_record_id == str(existing) and len(pipedrive_fake.persons) == 1
    assert [e["value"] for e in pipedrive_fake.persons[existing]["emails"]] == ["ivan@example.com"]
    assert [p["value"] for p in pipedrive_fake.persons[existing]["phones"]] == ["8 (916) 123-45-67"]


def test_a_linked_record_is_used_without_searching(pipedrive, pipedrive_fake):
    linked = pipedrive.deliver(delivery(key="k-1")).contact_record_id
    pipedrive_fake.calls.clear()

    pipedrive.deliver(delivery(contact(record_id=linked), key="k-2"))

    assert pipedrive_fake.count_calls("search|GET /api/v2/persons$|POST /api/v2/persons") == 0
    assert len(pipedrive_fake.notes_of(linked)) == 2


def test_a_linked_record_deleted_in_pipedrive_is_replaced(pipedrive, pipedrive_fake):
    result = pipedrive.deliver(delivery(contact(record_id="424242")))

    (person,) = pipedrive_fake.persons.values()
    assert result.contact_record_id == str(person["id"])
