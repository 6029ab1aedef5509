"""Pipedrive and our contact id: kept in a person field (created once, reused, created again if deleted) so that
a retry finds a person that has no email or phone, without spending searches on a first attempt.
"""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from tests.destinations.builders import contact, delivery
from tests.fakes import pipedrive as fake_pipedrive
from tests.fakes.base import Fault


FIELD = "crm-ingest contact id"   # the default name of the person field holding our contact id


def anonymous(contact_id: int = 1):
    return contact(contact_id, name=None, email=None, phone=None)


@pytest.mark.parametrize("search_lag_ms", [0, 60_000], ids=["indexed", "search-lagging"])
def test_a_retry_after_a_lost_create_of_a_person_without_email_or_phone_finds_that_person(
        pipedrive, pipedrive_fake, search_lag_ms):
    pipedrive_fake.faults.search_lag_ms = search_lag_ms
    pipedrive_fake.faults.script(Fault.after_write(match="^POST /api/v2/persons$", then="drop"))

    with pytest.raises(TransientError):
        pipedrive.deliver(delivery(anonymous(), key="k-1"))
    result = pipedrive.deliver(delivery(anonymous(), key="k-1", attempt=2))

    (person,) = pipedrive_fake.persons.values()
    assert result.contact_record_id == str(person["id"]) and len(pipedrive_fake.notes_of(person["id"])) == 1
    assert pipedrive_fake.custom_value(person["id"], FIELD) == "1"


def test_a_retry_finds_our_person_older_than_the_recent_window_by_searching_its_contact_id(pipedrive, pipedrive_fake):
    key = pipedrive_fake.seed_field(FIELD)
    ours = pipedrive_fake.seed_person("Contact #1", custom_fields={key: "1"})   # outside the recent window
    pipedrive_fake.seed_person("Someone else", custom_fields={key: "11"})

    result = pipedrive.deliver(delivery(anonymous(), key="k-1", attempt=2))

    assert result.contact_record_id == str(ours) and len(pipedrive_fake.persons) == 2
    assert pipedrive_fake.count_calls("POST /api/v2/persons") == 0


def test_another_delivery_of_a_contact_whose_create_went_unanswered_finds_that_person(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.after_write(match="^POST /api/v2/persons$", then="drop"))
    with pytest.raises(TransientError):
        pipedrive.deliver(delivery(anonymous(), key="k-1"))

    pipedrive.deliver(delivery(anonymous(), key="k-2"))   # the person's next interaction, on its first attempt
    pipedrive.deliver(delivery(anonymous(), key="k-1", attempt=2))

    (person,) = pipedrive_fake.persons.values()
    assert len(pipedrive_fake.notes_of(person["id"])) == 2


def test_a_first_attempt_spends_no_search_on_our_contact_id(pipedrive, pipedrive_fake):
    pipedrive.deliver(delivery(key="k-1"))
    pipedrive.deliver(delivery(anonymous(2), key="k-2"))

    assert [call.query["fields"] for call in pipedrive_fake.calls if call.path.endswith("/search")] == \
        [["email"], ["phone"]]
    assert pipedrive_fake.count_calls("GET /api/v2/persons$") == 1   # the recent listing, for the first one only


def test_the_contact_id_field_is_created_once_and_reused(pipedrive_fake, build_destination):
    for n in (1, 2):   # two destinations on one account, as two drains of one process
        pipedrive = build_destination("pipedrive", base_url=pipedrive_fake.url, api_token=fake_pipedrive.TOKEN)
        pipedrive.deliver(delivery(contact(n, email=f"p{n}@example.com", phone=None), key=f"k-{n}"))

    (field,) = [f for f in pipedrive_fake.person_fields.values() if f["name"] == FIELD]
    assert (field["field_type"], len(field["key"])) == ("varchar", 40)
    assert pipedrive_fake.count_calls("POST /api/v1/personFields") == 1
    assert pipedrive_fake.count_calls("GET /api/v1/personFields") == 2   # before creating it, and after
    assert sorted(p["custom_fields"][field["key"]] for p in pipedrive_fake.persons.values()) == ["1", "2"]


def test_a_contact_id_field_an_admin_created_is_used(pipedrive, pipedrive_fake):
    key = pipedrive_fake.seed_field(FIELD)

    result = pipedrive.deliver(delivery())

    assert pipedrive_fake.count_calls("POST /api/v1/personFields") == 0
    assert pipedrive_fake.persons[int(result.contact_record_id)]["custom_fields"] == {key: "1"}


def test_a_contact_id_field_deleted_in_pipedrive_is_created_again(pipedrive, pipedrive_fake):
    pipedrive.deliver(delivery(contact(1), key="k-1"))
    (deleted,) = [i for i, f in pipedrive_fake.person_fields.items() if f["name"] == FIELD]
    del pipedrive_fake.person_fields[deleted]

    result = pipedrive.deliver(delivery(contact(2, email="olga@example.com", phone=None), key="k-2"))

    assert pipedrive_fake.custom_value(result.contact_record_id, FIELD) == "2"


def test_a_person_someone_else_created_gets_our_contact_id_and_keeps_their_values(pipedrive, pipedrive_fake):
    theirs = pipedrive_fake.seed_person("Ivan (VIP)", emails=["ivan@example.com"], phones=["+7 916 123-45-67"])

    result = pipedrive.deliver(delivery())

    assert result.contact_record_id == str(theirs)
    person = pipedrive_fake.persons[theirs]
    assert person["name"] == "Ivan (VIP)" and [p["value"] for p in person["phones"]] == ["+7 916 123-45-67"]
    assert pipedrive_fake.custom_value(theirs, FIELD) == "1"


def test_a_token_that_may_not_add_fields_gets_a_dead_delivery_naming_the_field(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(403, {"success": False, "error": "You do not have permission"},
                                               match="POST /api/v1/personFields"))

    with pytest.raises(PermanentError) as caught:
        pipedrive.deliver(delivery())

    assert caught.value.reason == "auth" and repr(FIELD) in caught.value.message
    assert not pipedrive_fake.persons
