"""Pipedrive: one person per person despite search lag, one note (and lead) per delivery."""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from crm_sync.destinations.content import marker
from tests.destinations.builders import contact, deliver_until_done, delivery, lead
from tests.fakes.base import Fault


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


@pytest.mark.parametrize("step", ["POST /api/v2/persons", "POST /api/v1/leads", "POST /api/v1/notes"])
@pytest.mark.parametrize("then", ["500", "drop"])
def test_a_retry_after_a_lost_response_writes_nothing_twice(pipedrive, pipedrive_fake, step, then):
    pipedrive_fake.faults.script(Fault.after_write(match=f"^{step}$", then=then))

    with pytest.raises(TransientError):
        pipedrive.deliver(delivery(interaction=lead(), key="k-1"))
    deliver_until_done(pipedrive, delivery(interaction=lead(), key="k-1", attempt=2))

    (person,) = pipedrive_fake.persons_with(email="ivan@example.com")
    assert len(pipedrive_fake.leads_of(person["id"])) == 1
    assert len(pipedrive_fake.notes_of(person["id"])) == 1


def test_a_retry_finds_its_lead_beyond_the_first_page_of_the_persons_leads(pipedrive, pipedrive_fake):
    person = pipedrive_fake.seed_person("Ivan", emails=["ivan@example.com"])
    pipedrive_fake.seed_leads(person, 600)   # more than one page of 500
    pipedrive_fake.faults.script(Fault.after_write(match="^POST /api/v1/leads$"))

    with pytest.raises(TransientError):
        pipedrive.deliver(delivery(interaction=lead(), key="k-1"))
    pipedrive.deliver(delivery(interaction=lead(), key="k-1", attempt=2))

    assert [x["origin_id"] for x in pipedrive_fake.leads_of(person) if x["origin_id"]] == ["k-1"]


def test_search_lag_does_not_duplicate_the_person(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.search_lag_ms = 60_000
    pipedrive_fake.faults.script(Fault.after_write(match="^POST /api/v2/persons$"))

    with pytest.raises(TransientError):
        pipedrive.deliver(delivery(key="k-1"))
    pipedrive.deliver(delivery(key="k-1", attempt=2))
    pipedrive.deliver(delivery(key="k-2"))   # the next conversation, attempt 1, with no link stored yet

    (person,) = pipedrive_fake.persons.values()
    assert len(pipedrive_fake.notes_of(person["id"])) == 2


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


def test_rate_limit_is_transient_with_the_reset_delay(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.rate_limit(retry_after=3))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 3)


def test_rate_limit_with_retry_after_uses_it(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(429, {"success": False, "error": "Request over limit"},
                                               headers={"Retry-After": "9"}))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 9)


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.timeout(), Fault.after_write(then="drop")],
                         ids=["5xx", "timeout", "dropped"])
def test_an_unavailable_crm_is_a_transient_failure(pipedrive, pipedrive_fake, fault):
    pipedrive_fake.faults.script(fault)

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"


def test_a_wrong_token_is_a_permanent_auth_failure(pipedrive_fake, build_destination):
    pipedrive = build_destination("pipedrive", base_url=pipedrive_fake.url, api_token="wrong")

    with pytest.raises(PermanentError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("auth", 401)


def test_a_rejected_write_is_a_permanent_validation_failure(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(400, {"success": False, "error": "Validation failed: name: too long"},
                                               match="POST /api/v2/persons"))

    with pytest.raises(PermanentError) as caught:
        pipedrive.deliver(delivery())

    assert caught.value.reason == "validation" and "name: too long" in caught.value.message


def test_a_plan_cap_is_a_permanent_plan_limit_failure(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(403, {
        "success": False, "error": "Couldn't add the lead. Open leads limit reached.",
        "code": "feature_capping_leads_limit"}, match="POST /api/v1/leads"))

    with pytest.raises(PermanentError) as caught:
        pipedrive.deliver(delivery(interaction=lead()))

    assert caught.value.reason == "plan_limit"
