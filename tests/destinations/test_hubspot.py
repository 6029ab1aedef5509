"""HubSpot: one contact per person (upsert by our id), one note per delivery, whatever fails in between."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from crm_sync.destinations.content import marker
from tests.destinations.builders import chat, contact, deliver_until_done, delivery
from tests.fakes.base import Fault
from tests.fakes.hubspot import migration_in_progress


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


@pytest.mark.parametrize("step", ["contacts/batch/upsert", "notes/batch/create"])
@pytest.mark.parametrize("then", ["500", "drop"])
def test_a_retry_after_a_lost_response_writes_nothing_twice(hubspot, hubspot_fake, step, then):
    hubspot_fake.faults.script(Fault.after_write(match=step, then=then))

    with pytest.raises(TransientError):
        hubspot.deliver(delivery(key="k-1"))
    deliver_until_done(hubspot, delivery(key="k-1", attempt=2))

    (record,) = hubspot_fake.records_for(1)
    assert len(hubspot_fake.notes_of(record["id"])) == 1


def test_search_lag_does_not_duplicate_the_contact_or_the_note(hubspot, hubspot_fake):
    hubspot_fake.faults.search_lag_ms = 60_000
    hubspot_fake.faults.script(Fault.after_write(match="notes/batch/create"))

    with pytest.raises(TransientError):
        hubspot.deliver(delivery(key="k-1"))
    hubspot.deliver(delivery(key="k-1", attempt=2))
    hubspot.deliver(delivery(key="k-2"))   # another conversation of the same person, our link not yet stored

    (record,) = hubspot_fake.records_for(1)
    assert len(hubspot_fake.notes_of(record["id"])) == 2


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


def sent(fake, pattern: str) -> list:
    """The bodies of the requests whose "METHOD /path" matches `pattern`, in order."""
    return [call.body for call in fake.calls if re.search(pattern, f"{call.method} {call.path}")]


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


def test_a_retry_after_a_lost_contact_write_reads_it_back_and_writes_nothing_more(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.after_write(match="contacts/batch/upsert", then="drop"))

    with pytest.raises(TransientError):
        hubspot.deliver(delivery(key="k-1"))
    result = hubspot.deliver(delivery(key="k-1", attempt=2))

    (record,) = hubspot_fake.records_for(1)
    assert result.contact_record_id == record["id"]
    assert hubspot_fake.count_calls("contacts/batch/upsert") == 1


def test_a_contact_read_that_misses_records_for_another_reason_than_absence_writes_nothing(hubspot, hubspot_fake):
    record = hubspot_fake.seed_contact(crm_ingest_contact_id="1", email="ivan@example.com", firstname="Ivan (VIP)")
    hubspot_fake.faults.script(Fault.respond(207, {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [
        {"status": "error", "category": "INTERNAL_ERROR", "message": "Could not read some objects"}]},
        match="contacts/batch/read"))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"
    assert hubspot_fake.count_calls("contacts/batch/upsert|PATCH") == 0
    assert hubspot_fake.contacts[record]["properties"]["firstname"] == "Ivan (VIP)"


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


def test_rate_limit_with_retry_after_is_transient_with_that_delay(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.rate_limit(retry_after=7))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 7)


def test_rate_limit_without_retry_after_backs_off_by_the_policy_name(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.rate_limit(retry_after=None))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert caught.value.retry_after == 10


def test_a_migration_in_progress_makes_the_destination_wait_for_its_retry_after(hubspot, hubspot_fake):
    hubspot_fake.faults.script(migration_in_progress(retry_after=7200))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert (caught.value.reason, caught.value.status, caught.value.retry_after) == ("crm_migrating", 477, 7200)
    assert caught.value.asks_to_wait


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.timeout(), Fault.after_write(then="drop")],
                         ids=["5xx", "timeout", "dropped"])
def test_an_unavailable_crm_is_a_transient_failure(hubspot, hubspot_fake, fault):
    hubspot_fake.faults.script(fault)

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"


def test_latency_past_the_client_timeout_is_a_transient_failure(hubspot, hubspot_fake):
    hubspot_fake.faults.latency_ms = 2_000

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert caught.value.reason == "crm_unavailable" and "timed out" in caught.value.message


def test_a_wrong_token_is_a_permanent_auth_failure(hubspot_fake, build_destination):
    hubspot = build_destination("hubspot", base_url=hubspot_fake.url, token="wrong")

    with pytest.raises(PermanentError) as caught:
        hubspot.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("auth", 401)


def test_an_invalid_email_is_a_permanent_validation_failure(hubspot, hubspot_fake):
    with pytest.raises(PermanentError) as caught:
        hubspot.deliver(delivery(contact(email="not-an-email")))

    assert caught.value.reason == "validation"
    assert hubspot_fake.contacts == {}


def test_an_id_property_without_unique_values_says_how_to_fix_it(hubspot, hubspot_fake):
    hubspot_fake.unique_properties = set()

    with pytest.raises(PermanentError, match="unique values"):
        hubspot.deliver(delivery())


def test_find_sees_a_contact_we_just_wrote_despite_search_lag(hubspot, hubspot_fake):
    hubspot_fake.faults.search_lag_ms = 60_000
    record = hubspot.deliver(delivery()).contact_record_id

    assert hubspot.find(contact()) == record


def test_find_searches_by_email_for_a_person_we_never_wrote(hubspot, hubspot_fake):
    existing = hubspot_fake.seed_contact(email="ivan@example.com")

    assert hubspot.find(contact(contact_id=99)) == existing
    assert hubspot.find(contact(contact_id=98, email="nobody@example.com", phone=None)) is None
