"""Kommo answers 2xx with something else than the call's answer: a write without the ids of what it made is not
confirmed (the retry finds it), a look-up of the wrong shape is no "nothing found", and nothing escapes as a crash.
"""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import TransientError
from tests.destinations.builders import chat, contact, delivery, retry_after_a_lost_write
from tests.fakes.base import Fault, FakeResponse

COMPLEX = "POST /api/v4/leads/complex"
NOTES = "POST /api/v4/leads/notes"


def items_with(**changes):
    def rewrite(answer: FakeResponse) -> FakeResponse:
        answer.body = [{**item, **changes} for item in answer.body]
        return answer
    return rewrite


def two_people(attempt: int = 1):
    return [delivery(contact(n, email=f"p{n}@example.com", phone=f"+791612345{n:02d}"), chat(n), attempt=attempt)
            for n in (1, 2)]


@pytest.mark.parametrize("value", [None, 0, False], ids=["null", "zero", "false"])
def test_a_lead_answered_without_its_contact_id_is_an_unconfirmed_write(kommo, kommo_fake, value):
    kommo_fake.faults.script(Fault.rewrite_answer(COMPLEX, items_with(contact_id=value)))

    results = kommo.deliver_batch(two_people())

    assert all(isinstance(r, TransientError) and (r.reason, r.outcome_unknown) == ("crm_answer", True)
               for r in results)
    assert "leads/complex: answered lead" in results[0].message and "without its contact id" in results[0].message


@pytest.mark.parametrize("value", [None, "", {"id": 5}], ids=["null", "empty", "object"])
def test_a_lead_answered_without_its_id_is_an_unconfirmed_write(kommo, kommo_fake, value):
    kommo_fake.faults.script(Fault.rewrite_answer(COMPLEX, items_with(id=value)))

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery())

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)
    assert kommo_fake.notes == {}


def test_a_lead_answered_with_another_contact_than_the_linked_one_is_not_confirmed(kommo, kommo_fake):
    linked = kommo_fake.seed_contact("Ivan", emails=["ivan@example.com"])
    other = kommo_fake.seed_contact("Somebody else")
    kommo_fake.faults.script(Fault.rewrite_answer(COMPLEX, items_with(contact_id=other)))

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery(contact(record_id=str(linked))))

    assert caught.value.reason == "crm_answer" and f"with contact {other}, not {linked}" in caught.value.message


def test_an_error_object_answered_200_to_a_lead_write_is_a_transient_answer_error_quoting_it(kommo, kommo_fake):
    kommo_fake.faults.script(Fault.respond(200, {"title": "Bad Request", "status": 400,
                                                 "detail": "Account is blocked"}, COMPLEX))

    results = kommo.deliver_batch(two_people())

    assert all(isinstance(r, TransientError) and r.reason == "crm_answer" for r in results)
    assert "an object where an array was expected" in results[0].message and "Account is blocked" in results[0].message


@pytest.mark.parametrize("answer", [FakeResponse(200, []), FakeResponse(200, {"title": "error", "status": 400}),
                                    FakeResponse(204)], ids=["array", "error-object", "204"])
def test_a_note_answer_of_the_wrong_shape_is_an_unconfirmed_write(kommo, kommo_fake, answer):
    kommo_fake.faults.script(Fault.respond(answer.status, answer.body, NOTES))

    results = kommo.deliver_batch(two_people())

    assert all(isinstance(r, TransientError) and (r.reason, r.outcome_unknown) == ("crm_answer", True)
               for r in results)


def test_a_note_answered_without_its_id_is_an_unconfirmed_write(kommo, kommo_fake):
    def without_ids(answer: FakeResponse) -> FakeResponse:
        for note in answer.body["_embedded"]["notes"]:
            note["id"] = None
        return answer
    kommo_fake.faults.script(Fault.rewrite_answer(NOTES, without_ids))

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery())

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)


def test_a_contact_created_without_its_id_is_an_unconfirmed_write(kommo, kommo_fake):
    def without_ids(answer: FakeResponse) -> FakeResponse:
        for created in answer.body["_embedded"]["contacts"]:
            del created["id"]
        return answer
    kommo_fake.faults.script(Fault.rewrite_answer("POST /api/v4/contacts$", without_ids))

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery(with_interaction=False))

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)


@pytest.mark.parametrize("body", [{}, [], "", "null", {"_embedded": "x"}],
                         ids=["empty-object", "array", "empty-body", "null", "embedded-string"])
def test_a_retried_lead_look_up_answered_with_a_wrong_shape_writes_no_second_lead(kommo, kommo_fake, body):
    error = retry_after_a_lost_write(kommo, kommo_fake, COMPLEX, "GET /api/v4/leads$", body, look_ups=2)

    assert error.reason == "crm_answer"
    assert len(kommo_fake.leads) == 1 and len(kommo_fake.contacts) == 1


@pytest.mark.parametrize("body", [[], {"_embedded": {}}], ids=["array", "without-contacts"])
def test_a_contact_look_up_answered_with_a_wrong_shape_creates_no_contact(kommo, kommo_fake, body):
    kommo_fake.faults.script(Fault.respond(200, body, "GET /api/v4/contacts"))

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery())

    assert caught.value.reason == "crm_answer" and kommo_fake.contacts == {}
