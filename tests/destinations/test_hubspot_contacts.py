"""HubSpot contacts: one contact per person (upsert by our id) with one note per delivery, a person HubSpot
already knows adopted rather than duplicated, and `find` despite search lag.
"""
from __future__ import annotations

from crm_sync.destinations.content import marker
from tests.destinations.builders import contact, delivery


def test_a_new_person_becomes_one_contact_with_the_conversation_as_a_note(hubspot, hubspot_fake):
    result = hubspot.deliver(delivery(key="k-1"))

    (record,) = hubspot_fake.records_for(1)
    assert record["properties"] | {"email": "ivan@example.com", "firstname": "Ivan", "lastname": "Petrov",
                                   "phone": "+79161234567"} == record["properties"]
    (note,) = hubspot_fake.notes_of(record["id"])
    assert "Hello, is the blue one in stock?" in note["properties"]["hs_note_body"]
    assert marker("k-1") in note["properties"]["hs_note_body"]
    assert result.contact_record_id == record["id"] and result.interaction_record_id == note["id"]
    assert result.record_url == f"https://app.hubspot.com/contacts/4242/record/0-1/{record['id']}"
    assert result.api_calls == 3   # read by our id, upsert, note


def test_a_first_attempt_pays_for_no_search(hubspot, hubspot_fake):
    hubspot.deliver(delivery())

    assert hubspot_fake.count_calls("search|associations|notes/batch/read") == 0


def test_a_person_hubspot_already_knows_by_email_is_adopted_not_duplicated(hubspot, hubspot_fake):
    existing = hubspot_fake.seed_contact(email="ivan@example.com", firstname="Ivan")

    result = hubspot.deliver(delivery())

    assert result.contact_record_id == existing
    (record,) = hubspot_fake.records_with_email("ivan@example.com")
    assert record["properties"]["crm_ingest_contact_id"] == "1"
    assert len(hubspot_fake.notes_of(existing)) == 1


def test_an_email_that_moved_to_another_record_keeps_the_person_on_ours(hubspot, hubspot_fake):
    ours = hubspot.deliver(delivery(key="k-1")).contact_record_id
    other = hubspot_fake.seed_contact(email="ivan.new@example.com")

    result = hubspot.deliver(delivery(contact(email="ivan.new@example.com"), key="k-2"))

    assert result.contact_record_id == ours
    assert hubspot_fake.contacts[ours]["properties"]["email"] == "ivan@example.com"
    assert [r["id"] for r in hubspot_fake.records_with_email("ivan.new@example.com")] == [other]


def test_find_sees_a_contact_we_just_wrote_despite_search_lag(hubspot, hubspot_fake):
    hubspot_fake.faults.search_lag_ms = 60_000
    record = hubspot.deliver(delivery()).contact_record_id

    assert hubspot.find(contact()) == record


def test_find_searches_by_email_for_a_person_we_never_wrote(hubspot, hubspot_fake):
    existing = hubspot_fake.seed_contact(email="ivan@example.com")

    assert hubspot.find(contact(contact_id=99)) == existing
    assert hubspot.find(contact(contact_id=98, email="nobody@example.com", phone=None)) is None
