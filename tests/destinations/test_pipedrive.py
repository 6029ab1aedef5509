"""Pipedrive: one person per person despite search lag, one note (and lead) per delivery, searches within the
Search API's own limit."""
from __future__ import annotations

import threading

import httpx
import pytest

from crm_sync.delivery.clock import SYSTEM_CLOCK
from crm_sync.delivery.ratelimit import CallGate, RateLimitedTransport
from crm_sync.destinations.base import DeliveryResult, PermanentError, TransientError
from crm_sync.destinations.content import marker
from crm_sync.destinations.pipedrive import PipedriveDestination, PipedriveSettings
from tests.destinations.builders import contact, deliver_until_done, delivery, lead
from tests.destinations.conftest import CLIENT_TIMEOUT
from tests.fakes import pipedrive as fake_pipedrive
from tests.fakes.base import Fault

FIELD = "crm-ingest contact id"   # the default name of the person field holding our contact id


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


# --- our contact id on persons ---------------------------------------------------------------------------------------

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


# --- the Search API's own limit --------------------------------------------------------------------------------------

@pytest.fixture
def gated_pipedrive(pipedrive_fake, sqlite_runtime):
    """`gated_pipedrive()`: the module on a client whose calls pass a rate gate on the test's database, as a drain
    builds it (no `rate` configured: only Pipedrive's own search limit holds calls back). Each call is one drain."""
    clients: list[httpx.Client] = []

    def build() -> PipedriveDestination:
        gate = CallGate(sqlite_runtime.sessions, "pipedrive-burst", None, SYSTEM_CLOCK)
        clients.append(httpx.Client(timeout=CLIENT_TIMEOUT, transport=RateLimitedTransport(gate)))
        settings = PipedriveSettings(name="pipedrive-burst", kind="pipedrive", base_url=pipedrive_fake.url,
                                     api_token=fake_pipedrive.TOKEN, timeout_seconds=CLIENT_TIMEOUT)
        return PipedriveDestination(settings, clients[-1])

    pipedrive_fake.search_limit = fake_pipedrive.SEARCH_LIMIT
    yield build
    for client in clients:
        client.close()


def new_people(numbers: range) -> list:
    return [delivery(contact(n, email=f"p{n}@burst.example", phone=f"+7916555{n:04d}"), key=f"k-{n}")
            for n in numbers]


def test_a_burst_of_new_people_stays_within_the_search_limit(pipedrive_fake, gated_pipedrive):
    outcomes = gated_pipedrive().deliver_batch(new_people(range(1, 7)))   # 12 searches: over 10 in 2 s unchecked

    assert all(isinstance(outcome, DeliveryResult) for outcome in outcomes), outcomes
    assert pipedrive_fake.count_calls("/search$") == 12
    assert [call for call in pipedrive_fake.calls if call.status == 429] == []


def test_two_drains_share_one_search_limit_through_the_database(pipedrive_fake, gated_pipedrive):
    # Two gates on one database, as two worker processes have (one drain each): one bucket for both.
    drains = [gated_pipedrive(), gated_pipedrive()]
    outcomes: list = []
    threads = [threading.Thread(target=lambda d=d, n=n: outcomes.extend(d.deliver_batch(new_people(n))))
               for d, n in zip(drains, (range(1, 4), range(4, 7)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == 6 and all(isinstance(outcome, DeliveryResult) for outcome in outcomes), outcomes
    assert [call for call in pipedrive_fake.calls if call.status == 429] == []
