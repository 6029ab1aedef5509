"""HubSpot batches: a burst is read and written in a few calls for the whole batch, and what fails for one
delivery fails only that delivery.
"""
from __future__ import annotations

from dataclasses import replace

from crm_sync.destinations.base import PermanentError, TransientError
from tests.destinations.builders import chat, contact, delivery
from tests.destinations.hubspot_support import sent
from tests.fakes.base import Fault


def test_a_batch_reads_its_contacts_in_one_call_and_writes_only_those_lacking_something(hubspot, hubspot_fake):
    complete = hubspot_fake.seed_contact(crm_ingest_contact_id="2", email="p2@example.com", phone="+79160000002",
                                         firstname="Ivan", lastname="Petrov")
    lacking = hubspot_fake.seed_contact(crm_ingest_contact_id="3", email="p3@example.com", firstname="Ivan",
                                        lastname="Petrov")
    requests = [delivery(contact(n, email=f"p{n}@example.com", phone=f"+7916000000{n}"), key=f"k-{n}")
                for n in (1, 2, 3)]

    results = hubspot.deliver_batch(requests)

    assert [r.contact_record_id for r in results[1:]] == [complete, lacking]
    assert hubspot_fake.count_calls("") == 3   # one read, one upsert, one note batch
    (upsert,) = sent(hubspot_fake, "contacts/batch/upsert")
    assert {item["id"]: item["properties"] for item in upsert["inputs"]} == {
        "1": {"email": "p1@example.com", "phone": "+79160000001", "firstname": "Ivan", "lastname": "Petrov"},
        "3": {"phone": "+79160000003"}}


def test_a_burst_is_written_in_three_calls_for_the_whole_batch(hubspot, hubspot_fake):
    requests = [delivery(contact(n, email=f"p{n}@example.com", phone=None), key=f"k-{n}") for n in range(1, 21)]

    results = hubspot.deliver_batch(requests)

    assert hubspot_fake.count_calls("") == 3   # one contact read, one contact upsert, one note batch
    assert sum(r.api_calls for r in results) == 3
    for n, result in enumerate(results, start=1):
        (record,) = hubspot_fake.records_for(n)
        assert result.contact_record_id == record["id"]
        assert [note["id"] for note in hubspot_fake.notes_of(record["id"])] == [result.interaction_record_id]


def test_one_by_one_the_same_burst_costs_three_calls_per_delivery(hubspot, hubspot_fake):
    for n in range(1, 6):
        hubspot.deliver(delivery(contact(n, email=f"p{n}@example.com"), key=f"k-{n}"))

    assert hubspot_fake.count_calls("") == 15


def test_a_batch_with_a_person_known_by_email_delivers_everyone_once(hubspot, hubspot_fake):
    hubspot_fake.seed_contact(email="p3@example.com")
    requests = [delivery(contact(n, email=f"p{n}@example.com"), key=f"k-{n}") for n in range(1, 6)]

    results = hubspot.deliver_batch(requests)

    assert all(not isinstance(r, Exception) for r in results)
    for n in range(1, 6):
        assert len(hubspot_fake.records_with_email(f"p{n}@example.com")) == 1


def test_a_batch_with_an_invalid_email_fails_only_that_delivery(hubspot, hubspot_fake):
    emails = ["p1@example.com", "not-an-email", "p3@example.com"]
    requests = [delivery(contact(n, email=e), key=f"k-{n}") for n, e in enumerate(emails, start=1)]

    results = hubspot.deliver_batch(requests)

    assert isinstance(results[1], PermanentError) and results[1].reason == "validation"
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)
    assert hubspot_fake.records_for(2) == []


def test_a_batch_with_a_note_hubspot_refuses_fails_only_that_delivery(hubspot, hubspot_fake):
    hubspot_fake.rejected_note_texts = {"refuse this one"}
    refused = replace(chat(11), transcript=({"author": "visitor", "author_name": "Ivan", "text": "refuse this one"},))
    requests = [delivery(contact(1, email="p1@example.com"), chat(10), key="k-1"),
                delivery(contact(2, email="p2@example.com"), refused, key="k-2"),
                delivery(contact(3, email="p3@example.com"), chat(12), key="k-3")]

    results = hubspot.deliver_batch(requests)

    assert isinstance(results[1], PermanentError) and results[1].reason == "validation"
    for n in (1, 3):
        (record,) = hubspot_fake.records_for(n)
        assert [note["id"] for note in hubspot_fake.notes_of(record["id"])] == [results[n - 1].interaction_record_id]
    assert len(hubspot_fake.notes) == 2


def test_a_failed_look_up_of_one_retried_note_fails_only_that_delivery(hubspot, hubspot_fake):
    requests = [delivery(contact(n, email=f"p{n}@example.com"), chat(10 + n), key=f"k-{n}", attempt=2)
                for n in (1, 2)]
    hubspot_fake.faults.script(Fault.server_error(match="associations"))

    results = hubspot.deliver_batch(requests)

    assert isinstance(results[0], TransientError) and results[0].reason == "crm_unavailable"
    (record,) = hubspot_fake.records_for(2)
    assert [note["id"] for note in hubspot_fake.notes_of(record["id"])] == [results[1].interaction_record_id]


def test_a_batch_that_holds_one_delivery_twice_writes_one_note(hubspot, hubspot_fake):
    results = hubspot.deliver_batch([delivery(key="k-1"), delivery(key="k-1")])

    assert results[0].interaction_record_id == results[1].interaction_record_id
    assert len(hubspot_fake.notes) == 1
