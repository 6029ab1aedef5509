"""HubSpot answers 2xx with something else than the call's answer: nothing is taken for "not there" (which would
overwrite a rep's values or write a second note), no glitch is taken for a record id, and nothing escapes as a crash.
"""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import TransientError
from tests.destinations.builders import chat, contact, delivery, retry_after_a_lost_write
from tests.fakes.base import Fault, FakeResponse

READ = "contacts/batch/read"
UPSERT = "contacts/batch/upsert"
NOTES = "notes/batch/create"


def ids_set_to(value):
    def rewrite(answer: FakeResponse) -> FakeResponse:
        for result in answer.body["results"]:
            result["id"] = value
        return answer
    return rewrite


@pytest.mark.parametrize("answer", [FakeResponse(200, ""), FakeResponse(204), FakeResponse(200, []),
                                    FakeResponse(200, {"status": "COMPLETE"}), FakeResponse(200, {"results": []}),
                                    FakeResponse(207, {"results": [], "errors": [{"category": "OBJECT_NOT_FOUND",
                                                                                  "message": "some were not found"}]})],
                         ids=["empty", "204", "array", "no-results", "no-record", "not-found-without-ids"])
def test_a_contact_read_that_does_not_account_for_the_record_writes_nothing_over_the_reps_values(
        hubspot, hubspot_fake, answer):
    record = hubspot_fake.seed_contact(crm_ingest_contact_id="1", firstname="Ivan (VIP)", email="ivan.vip@corp.com")
    hubspot_fake.faults.script(Fault.respond(answer.status, answer.body, READ))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery(contact(1, name="Vanya Petrov", email="ivan@example.com")))

    assert caught.value.reason == "crm_answer" and READ in caught.value.message
    assert hubspot_fake.count_calls(f"{UPSERT}|PATCH") == 0
    assert hubspot_fake.contacts[record]["properties"]["firstname"] == "Ivan (VIP)"


def test_contact_read_errors_that_are_not_a_list_are_a_transient_answer_error(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.respond(207, {"results": [], "errors": "boom"}, READ))

    results = hubspot.deliver_batch([delivery()])

    assert isinstance(results[0], TransientError) and results[0].reason == "crm_answer"


def test_an_upsert_answered_with_a_page_is_an_unconfirmed_write_quoting_it(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.respond(200, "<html>Please log in</html>", UPSERT, content_type="text/html"))

    results = hubspot.deliver_batch([delivery(contact(n, email=f"p{n}@example.com"), chat(n)) for n in (1, 2)])

    assert all(isinstance(r, TransientError) and r.reason == "crm_answer" and r.outcome_unknown for r in results)
    assert "batch/upsert: answered HTTP 200 with a body that is not JSON" in results[0].message
    assert "<html>Please log in</html>" in results[0].message


@pytest.mark.parametrize("value", [None, {"v": 1}, 10 ** 40], ids=["null", "object", "huge"])
def test_an_upsert_answered_without_a_usable_record_id_is_an_unconfirmed_write_not_a_dead_delivery(
        hubspot, hubspot_fake, value):
    hubspot_fake.faults.script(*[Fault.rewrite_answer(UPSERT, ids_set_to(value)) for _ in range(2)])

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)
    assert hubspot_fake.notes == {}


def test_after_an_upsert_answered_without_an_id_the_retry_uses_the_one_record(hubspot, hubspot_fake):
    hubspot_fake.faults.script(*[Fault.rewrite_answer(UPSERT, ids_set_to(None)) for _ in range(2)])
    with pytest.raises(TransientError):
        hubspot.deliver(delivery())

    result = hubspot.deliver(delivery(attempt=2))

    (record,) = hubspot_fake.records_for(1)
    assert result.contact_record_id == record["id"]
    assert [note["id"] for note in hubspot_fake.notes_of(record["id"])] == [result.interaction_record_id]


@pytest.mark.parametrize("value", [None, "", {"id": 1}], ids=["null", "empty", "object"])
def test_a_note_answered_without_a_usable_id_is_an_unconfirmed_write(hubspot, hubspot_fake, value):
    hubspot_fake.faults.script(Fault.rewrite_answer(NOTES, ids_set_to(value)))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)
    assert "notes/batch/create: answered without an id for note" in caught.value.message


def test_after_a_note_answered_without_an_id_the_retry_finds_that_note(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.rewrite_answer(NOTES, ids_set_to(None)))
    with pytest.raises(TransientError):
        hubspot.deliver(delivery())

    result = hubspot.deliver(delivery(attempt=2))

    assert list(hubspot_fake.notes) == [result.interaction_record_id]


def test_two_notes_answered_with_one_id_are_neither_confirmed(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.rewrite_answer(NOTES, ids_set_to("1003")))

    results = hubspot.deliver_batch([delivery(contact(n, email=f"p{n}@example.com"), chat(n)) for n in (1, 2)])

    assert all(isinstance(r, TransientError) and r.reason == "crm_answer" for r in results)


def test_a_note_whose_trace_id_names_another_delivery_is_confirmed_for_neither(hubspot, hubspot_fake):
    def swapped(answer: FakeResponse) -> FakeResponse:
        results = answer.body["results"]
        results[0]["objectWriteTraceId"], results[1]["objectWriteTraceId"] = \
            results[1]["objectWriteTraceId"], results[0]["objectWriteTraceId"]
        return answer
    hubspot_fake.faults.script(Fault.rewrite_answer(NOTES, swapped))

    results = hubspot.deliver_batch([delivery(contact(n, email=f"p{n}@example.com"), chat(n)) for n in (1, 2)])

    assert all(isinstance(r, TransientError) for r in results)


@pytest.mark.parametrize("answer", [FakeResponse(201, ""), FakeResponse(201, []), FakeResponse(201, {"results": None})],
                         ids=["empty", "array", "results-null"])
def test_a_note_answer_of_the_wrong_shape_fails_the_batch_transiently_instead_of_raising(hubspot, hubspot_fake,
                                                                                         answer):
    hubspot_fake.faults.script(Fault.respond(answer.status, answer.body, NOTES))

    results = hubspot.deliver_batch([delivery(contact(n, email=f"p{n}@example.com"), chat(n)) for n in (1, 2)])

    assert all(isinstance(r, TransientError) and r.reason == "crm_answer" and r.outcome_unknown for r in results)


@pytest.mark.parametrize("body", [{}, [], "", "null"], ids=["empty-object", "array", "empty-body", "null"])
def test_a_retried_note_look_up_answered_with_a_wrong_shape_writes_no_second_note(hubspot, hubspot_fake, body):
    error = retry_after_a_lost_write(hubspot, hubspot_fake, NOTES, "associations/notes", body)

    assert error.reason == "crm_answer"
    assert len(hubspot_fake.notes) == 1
