"""Kommo: one contact per person despite search lag, one lead (with its note) per delivery, batched writes."""
from __future__ import annotations

from dataclasses import replace

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from crm_sync.destinations.content import marker
from tests.destinations.builders import contact, deliver_until_done, delivery
from tests.fakes import kommo as kommo_fake_module
from tests.fakes.base import Fault


def test_a_new_person_becomes_a_contact_with_a_lead_and_the_conversation_as_its_note(kommo, kommo_fake):
    result = kommo.deliver(delivery(key="k-1"))

    (record,) = kommo_fake.contacts_with(email="ivan@example.com")
    assert (record["first_name"], record["last_name"]) == ("Ivan", "Petrov")
    assert kommo_fake.contacts_with(phone="+79161234567") == [record]
    (lead,) = kommo_fake.leads_of(record["id"])
    assert lead["custom_fields_values"][0]["values"] == [{"value": "k-1"}]
    assert [tag["name"] for tag in lead["tags"]] == ["jivo"]
    (note,) = kommo_fake.notes_of(lead["id"])
    assert "Hello, is the blue one in stock?" in note["params"]["text"] and marker("k-1") in note["params"]["text"]
    assert (result.contact_record_id, result.interaction_record_id) == (str(record["id"]), str(lead["id"]))
    assert result.record_url == f"{kommo_fake.url}/contacts/detail/{record['id']}"


@pytest.mark.parametrize("step", ["leads/complex", "leads/notes"])
@pytest.mark.parametrize("then", ["500", "drop"])
def test_a_retry_after_a_lost_response_writes_nothing_twice(kommo, kommo_fake, step, then):
    kommo_fake.faults.script(Fault.after_write(match=step, then=then))

    with pytest.raises(TransientError):
        kommo.deliver(delivery(key="k-1"))
    deliver_until_done(kommo, delivery(key="k-1", attempt=2))

    (record,) = kommo_fake.contacts.values()
    (lead,) = kommo_fake.leads_of(record["id"])
    assert len(kommo_fake.notes_of(lead["id"])) == 1


def test_search_lag_does_not_duplicate_the_contact_or_the_lead(kommo, kommo_fake):
    kommo_fake.faults.search_lag_ms = 60_000
    kommo_fake.faults.script(Fault.after_write(match="leads/complex"))

    with pytest.raises(TransientError):
        kommo.deliver(delivery(key="k-1"))
    kommo.deliver(delivery(key="k-2"))                # the next conversation, attempt 1, no link stored yet
    kommo.deliver(delivery(key="k-1", attempt=2))     # the lost one, retried while search still lags

    (record,) = kommo_fake.contacts.values()
    assert sorted(lead["custom_fields_values"][0]["values"][0]["value"]
                  for lead in kommo_fake.leads_of(record["id"])) == ["k-1", "k-2"]
    assert len(kommo_fake.notes) == 2


def test_a_person_known_by_a_differently_written_phone_is_found_and_gets_the_email(kommo, kommo_fake):
    existing = kommo_fake.seed_contact("Ivan", phones=["8 (916) 123-45-67"])

    result = kommo.deliver(delivery())

    assert result.contact_record_id == str(existing) and len(kommo_fake.contacts) == 1
    assert kommo_fake.contacts_with(email="ivan@example.com")[0]["id"] == existing
    assert len(kommo_fake.leads_of(existing)) == 1


def test_adding_a_phone_keeps_the_type_of_the_values_already_there(kommo, kommo_fake):
    existing = kommo_fake.seed_contact("Ivan", emails=[{"value": "ivan@home.example", "enum_code": "PRIV"}],
                                       phones=[{"value": "+7 916 123-45-67", "enum_code": "MOB"}])

    kommo.deliver(delivery(replace(contact(email="ivan@home.example"), phones=("+79161234567", "+79031112233"))))

    fields = {f["field_code"]: f["values"] for f in kommo_fake.contacts[existing]["custom_fields_values"]}
    assert [(v["value"], v["enum_code"]) for v in fields["PHONE"]] == [("+7 916 123-45-67", "MOB"),
                                                                       ("+79031112233", "WORK")]
    assert [(v["value"], v["enum_code"]) for v in fields["EMAIL"]] == [("ivan@home.example", "PRIV")]


def test_a_linked_record_is_used_without_searching(kommo, kommo_fake):
    linked = kommo.deliver(delivery(key="k-1")).contact_record_id
    kommo_fake.calls.clear()

    kommo.deliver(delivery(contact(record_id=linked), key="k-2"))

    assert not any("query" in call.query or "filter[updated_at][from]" in call.query for call in kommo_fake.calls)
    assert len(kommo_fake.leads_of(linked)) == 2


def test_a_burst_costs_fewer_calls_in_a_batch_than_one_by_one(kommo, kommo_fake):
    people = [contact(n, email=f"p{n}@example.com", phone=None) for n in range(1, 11)]

    results = kommo.deliver_batch([delivery(p, key=f"batch-{p.contact_id}") for p in people])
    batch_calls = kommo_fake.count_calls("")
    for p in people:
        kommo.deliver(delivery(contact(p.contact_id + 100, email=f"q{p.contact_id}@example.com", phone=None),
                               key=f"single-{p.contact_id}"))
    single_calls = kommo_fake.count_calls("") - batch_calls

    assert sum(r.api_calls for r in results) == batch_calls == 10 + 3   # a search per person, a scan, two writes
    assert single_calls == 10 * 4
    for n in range(1, 11):
        (record,) = kommo_fake.contacts_with(email=f"p{n}@example.com")
        assert len(kommo_fake.leads_of(record["id"])) == 1


def test_two_deliveries_of_one_new_person_in_a_batch_create_one_contact(kommo, kommo_fake):
    results = kommo.deliver_batch([delivery(key="k-1"), delivery(key="k-2")])

    (record,) = kommo_fake.contacts.values()
    assert {r.contact_record_id for r in results} == {str(record["id"])}
    assert len(kommo_fake.leads_of(record["id"])) == 2


def test_a_batch_that_holds_one_delivery_twice_writes_one_lead(kommo, kommo_fake):
    results = kommo.deliver_batch([delivery(key="k-1"), delivery(key="k-1")])

    assert results[0].interaction_record_id == results[1].interaction_record_id
    assert len(kommo_fake.leads) == 1 and len(kommo_fake.notes) == 1


def test_rate_limit_with_retry_after_is_transient_with_that_delay(kommo, kommo_fake):
    kommo_fake.faults.script(Fault.rate_limit(retry_after=4))

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 4)


def test_an_ip_blocked_after_too_many_requests_makes_the_destination_wait_minutes(kommo, kommo_fake):
    kommo_fake.faults.script(kommo_fake_module.ip_blocked())

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("rate_limit", 403)
    assert caught.value.retry_after >= 300 and caught.value.asks_to_wait


def test_an_ip_missing_from_the_accounts_whitelist_is_a_permanent_auth_failure(kommo, kommo_fake):
    kommo_fake.faults.script(kommo_fake_module.ip_not_whitelisted())

    with pytest.raises(PermanentError) as caught:
        kommo.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("auth", 403)


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.timeout(), Fault.after_write(then="drop")],
                         ids=["5xx", "timeout", "dropped"])
def test_an_unavailable_crm_is_a_transient_failure(kommo, kommo_fake, fault):
    kommo_fake.faults.script(fault)

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"


def test_a_wrong_token_is_a_permanent_auth_failure(kommo_fake, build_destination):
    kommo = build_destination("kommo", base_url=kommo_fake.url, token="wrong",
                              key_field_id=kommo_fake_module.KEY_FIELD_ID)

    with pytest.raises(PermanentError) as caught:
        kommo.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("auth", 401)


def test_a_key_field_that_does_not_exist_is_a_permanent_validation_failure(kommo_fake, build_destination):
    kommo = build_destination("kommo", base_url=kommo_fake.url, token=kommo_fake_module.TOKEN, key_field_id=1)

    with pytest.raises(PermanentError) as caught:
        kommo.deliver(delivery())

    assert caught.value.reason == "validation" and "custom_fields_values" in caught.value.message
    assert kommo_fake.leads == {}


def refused_as_invalid() -> Fault:
    """Kommo's 400 for a leads/complex body it will not take: the whole call is refused, nothing written."""
    return Fault.respond(400, {"title": "Bad Request", "status": 400, "detail": "Request validation failed",
                               "validation-errors": [{"request_id": "k-2", "errors": [{
                                   "code": "NotSupportedChoice", "path": "custom_fields_values.0", "detail": "bad"}]}]},
                         "leads/complex")


def three_people() -> list:
    return [delivery(contact(n, email=f"v{n}@example.com", phone=None), key=f"k-{n}") for n in (1, 2, 3)]


def test_a_batch_refused_as_invalid_is_written_again_one_by_one(kommo, kommo_fake):
    kommo_fake.faults.script(refused_as_invalid())

    results = kommo.deliver_batch(three_people())

    assert all(not isinstance(result, Exception) for result in results)
    assert kommo_fake.count_calls("leads/complex") == 1 + 3
    assert len(kommo_fake.leads) == 3 and len(kommo_fake.contacts) == 3


def test_only_the_delivery_kommo_refuses_on_its_own_fails_the_others_are_written(kommo, kommo_fake):
    kommo_fake.faults.script(refused_as_invalid(), refused_as_invalid())   # the batch, then the first one alone

    first, *others = kommo.deliver_batch(three_people())

    assert isinstance(first, PermanentError) and first.reason == "validation"
    assert all(not isinstance(result, Exception) for result in others)
    assert len(kommo_fake.leads) == 2


def test_only_the_person_whose_new_values_kommo_refuses_fails_the_others_are_updated(kommo, kommo_fake):
    people = [contact(n, email=f"known{n}@example.com", phone=f"+7916123450{n}") for n in (1, 2)]
    for person in people:
        kommo_fake.seed_contact(f"Known {person.contact_id}", emails=[person.emails[0]])
    refused = Fault.respond(400, {"title": "Bad Request", "status": 400, "detail": "Request validation failed",
                                  "validation-errors": [{"request_id": "0", "errors": [
                                      {"code": "NotFound", "path": "id", "detail": "Contact not found"}]}]},
                            "PATCH /api/v4/contacts")
    kommo_fake.faults.script(refused, refused)   # the PATCH of both, then the first one's alone

    first, second = kommo.deliver_batch([delivery(person, key=f"k-{person.contact_id}") for person in people])

    assert isinstance(first, PermanentError) and first.reason == "validation"
    assert not isinstance(second, Exception)
    assert kommo_fake.contacts_with(phone="+79161234502") and not kommo_fake.contacts_with(phone="+79161234501")
