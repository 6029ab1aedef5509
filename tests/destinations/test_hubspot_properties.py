"""HubSpot contact properties: what a rep wrote is kept, only empty properties are filled, a new contact gets
everything, and a record with nothing to fill costs no write.
"""
from __future__ import annotations

from dataclasses import replace

from tests.destinations.builders import contact, delivery
from tests.destinations.hubspot_support import sent


def rep_values(record: dict) -> dict:
    return {name: record["properties"].get(name) for name in
            ("email", "phone", "mobilephone", "firstname", "lastname", "company")}


def test_a_reps_phone_name_and_company_are_kept_and_our_other_phone_lands_in_mobilephone(hubspot, hubspot_fake):
    record = hubspot_fake.seed_contact(crm_ingest_contact_id="1", email="ivan@example.com", phone="+7 495 000-00-00",
                                       firstname="Ivan (VIP)", lastname="Petrov-Sidorov", company="ACME")

    result = hubspot.deliver(delivery(contact(phone="+79161234567", company="Blue Shop")))

    assert result.contact_record_id == record
    assert rep_values(hubspot_fake.contacts[record]) == {
        "email": "ivan@example.com", "phone": "+7 495 000-00-00", "mobilephone": "+79161234567",
        "firstname": "Ivan (VIP)", "lastname": "Petrov-Sidorov", "company": "ACME"}
    (upsert,) = sent(hubspot_fake, "contacts/batch/upsert")
    assert upsert["inputs"][0]["properties"] == {"mobilephone": "+79161234567"}


def test_a_reps_email_on_an_existing_record_is_kept(hubspot, hubspot_fake):
    record = hubspot_fake.seed_contact(crm_ingest_contact_id="1", email="ivan.petrov@corp.example",
                                       phone="+79161234567", firstname="Ivan", lastname="Petrov")

    hubspot.deliver(delivery(contact(email="ivan@example.com")))

    assert hubspot_fake.contacts[record]["properties"]["email"] == "ivan.petrov@corp.example"
    assert hubspot_fake.records_with_email("ivan@example.com") == []


def test_an_empty_property_on_an_existing_record_is_filled(hubspot, hubspot_fake):
    record = hubspot_fake.seed_contact(crm_ingest_contact_id="1", email="ivan@example.com", firstname="Ivan (VIP)")

    hubspot.deliver(delivery(contact(company="Blue Shop")))

    assert rep_values(hubspot_fake.contacts[record]) == {
        "email": "ivan@example.com", "phone": "+79161234567", "mobilephone": None,
        "firstname": "Ivan (VIP)", "lastname": "Petrov", "company": "Blue Shop"}
    (upsert,) = sent(hubspot_fake, "contacts/batch/upsert")
    assert upsert["inputs"][0]["properties"] == {"lastname": "Petrov", "phone": "+79161234567",
                                                 "company": "Blue Shop"}


def test_a_new_contact_is_created_with_everything(hubspot, hubspot_fake):
    person = replace(contact(company="Blue Shop"), phones=("+79161234567", "+74950000000"))

    hubspot.deliver(delivery(person))

    (record,) = hubspot_fake.records_for(1)
    assert rep_values(record) == {
        "email": "ivan@example.com", "phone": "+79161234567", "mobilephone": "+74950000000",
        "firstname": "Ivan", "lastname": "Petrov", "company": "Blue Shop"}
    assert hubspot_fake.count_calls("contacts/batch/read") == 1
    assert hubspot_fake.count_calls("contacts/batch/upsert") == 1


def test_the_409_path_keeps_the_reps_values_and_fills_only_what_is_empty(hubspot, hubspot_fake):
    record = hubspot_fake.seed_contact(email="ivan@example.com", phone="+7 495 000-00-00", firstname="Ivan (VIP)",
                                       lastname="Petrov-Sidorov")

    result = hubspot.deliver(delivery(contact(company="Blue Shop")))

    assert result.contact_record_id == record
    assert rep_values(hubspot_fake.contacts[record]) == {
        "email": "ivan@example.com", "phone": "+7 495 000-00-00", "mobilephone": "+79161234567",
        "firstname": "Ivan (VIP)", "lastname": "Petrov-Sidorov", "company": "Blue Shop"}
    (patch,) = sent(hubspot_fake, f"PATCH .*/contacts/{record}")
    assert patch["properties"] == {"mobilephone": "+79161234567", "company": "Blue Shop",
                                   "crm_ingest_contact_id": "1"}
    assert hubspot_fake.count_calls(f"GET .*/contacts/{record}") == 1


def test_an_existing_record_with_nothing_to_fill_costs_no_write(hubspot, hubspot_fake):
    record = hubspot_fake.seed_contact(crm_ingest_contact_id="1", email="ivan@example.com", phone="+74950000000",
                                       mobilephone="+79161234567", firstname="Ivan", lastname="Petrov",
                                       company="ACME")

    result = hubspot.deliver(delivery())

    assert result.contact_record_id == record and result.api_calls == 2   # read by our id, note
    assert hubspot_fake.count_calls("contacts/batch/upsert|PATCH") == 0
