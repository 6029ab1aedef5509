"""Pipedrive answers 2xx with something else than the call's answer: a write without the id of what it made is not
confirmed (the retry finds it), a listing of the wrong shape is no "nothing found", and nothing escapes as a crash.
"""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import TransientError
from tests.destinations.builders import contact, delivery, lead, retry_after_a_lost_write
from tests.fakes.base import Fault, FakeResponse

PERSONS = "POST /api/v2/persons$"
NOTES = "POST /api/v1/notes"
LEADS = "POST /api/v1/leads"


def data_id_set_to(value):
    def rewrite(answer: FakeResponse) -> FakeResponse:
        answer.body["data"]["id"] = value
        return answer
    return rewrite


@pytest.mark.parametrize("value", [None, {"a": 1}, 0], ids=["null", "object", "zero"])
def test_a_note_answered_without_a_usable_id_is_an_unconfirmed_write(pipedrive, pipedrive_fake, value):
    pipedrive_fake.faults.script(Fault.rewrite_answer(NOTES, data_id_set_to(value)))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)
    assert caught.value.message == "pipedrive POST /api/v1/notes: answered without the note's id"


def test_after_a_note_answered_without_an_id_the_retry_finds_that_note(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.rewrite_answer(NOTES, data_id_set_to(None)))
    with pytest.raises(TransientError):
        pipedrive.deliver(delivery())

    result = pipedrive.deliver(delivery(attempt=2))

    assert [str(n) for n in pipedrive_fake.notes] == [result.interaction_record_id]


def test_a_lead_answered_without_its_id_is_an_unconfirmed_write(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.rewrite_answer(LEADS, data_id_set_to(None)))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery(interaction=lead()))

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)
    assert pipedrive_fake.notes == {}


def test_a_person_created_without_its_id_is_an_unconfirmed_write_that_the_retry_finds(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.rewrite_answer(PERSONS, data_id_set_to(None)))
    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    result = pipedrive.deliver(delivery(attempt=2))

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)
    assert [str(p) for p in pipedrive_fake.persons] == [result.contact_record_id]


@pytest.mark.parametrize("answer", [FakeResponse(201, ""), FakeResponse(201, []), FakeResponse(204),
                                    FakeResponse(201, {"success": True, "data": None})],
                         ids=["empty", "array", "204", "data-null"])
def test_a_note_answer_of_the_wrong_shape_is_an_unconfirmed_write(pipedrive, pipedrive_fake, answer):
    pipedrive_fake.faults.script(Fault.respond(answer.status, answer.body, NOTES))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)


def test_a_refusal_answered_200_is_a_transient_answer_error_quoting_pipedrives_error(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(200, {"success": False, "error": "Something went sideways"}, PERSONS))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert caught.value.reason == "crm_answer"
    assert caught.value.message == "pipedrive POST /api/v2/persons: answered success=false: Something went sideways"


@pytest.mark.parametrize("body", [{}, [], "", "null"], ids=["empty-object", "array", "empty-body", "null"])
def test_a_retried_note_look_up_answered_with_a_wrong_shape_writes_no_second_note(pipedrive, pipedrive_fake, body):
    error = retry_after_a_lost_write(pipedrive, pipedrive_fake, NOTES, "GET /api/v1/notes", body)

    assert error.reason == "crm_answer" and len(pipedrive_fake.notes) == 1


@pytest.mark.parametrize("body", [{}, [], "", {"success": True}], ids=["empty-object", "array", "empty-body",
                                                                       "without-data"])
def test_a_retried_lead_look_up_answered_with_a_wrong_shape_writes_no_second_lead(pipedrive, pipedrive_fake, body):
    error = retry_after_a_lost_write(pipedrive, pipedrive_fake, LEADS, "GET /api/v1/leads", body, interaction=lead())

    assert error.reason == "crm_answer" and len(pipedrive_fake.leads) == 1


@pytest.mark.parametrize("body", [{"success": True, "data": []},
                                  {"success": True, "data": {"items": [{"item": {"emails": ["ivan@example.com"]}}]}}],
                         ids=["data-list", "hit-without-id"])
def test_a_person_search_answered_with_a_wrong_shape_creates_no_person(pipedrive, pipedrive_fake, body):
    pipedrive_fake.faults.script(Fault.respond(200, body, "persons/search"))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery(contact()))

    assert caught.value.reason == "crm_answer" and pipedrive_fake.persons == {}
