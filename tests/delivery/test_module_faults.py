"""A CRM module's bugs and an answer the store cannot record stay with the deliveries they concern: the others of
the batch are recorded, nothing is left in flight to be sent again and again, and the attempt limit applies."""
from __future__ import annotations

import pytest

from crm_sync.destinations.pipedrive import PipedriveDestination
from crm_sync.schema import DeliveryStatus
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import pipedrive_settings

PIPEDRIVE = "pipedrive-main"
BROKEN = "broken"


@pytest.fixture
def pipedrive_harness(make_harness, pipedrive_fake):
    return make_harness({PIPEDRIVE: pipedrive_settings(pipedrive_fake)})


def test_a_module_bug_on_one_delivery_fails_only_that_delivery(pipedrive_harness, monkeypatch):
    harness = pipedrive_harness
    harness.receive(*[jivo_chat(450 + n, phone=f"+7916123045{n}") for n in range(3)])
    notes, usual = [], PipedriveDestination._note

    def trips_from_the_third_note(self, request, person_id, lead_id):   # a bug in the module
        notes.append(request)
        if len(notes) >= 3:
            raise KeyError("data")
        return usual(self, request, person_id, lead_id)
    monkeypatch.setattr(PipedriveDestination, "_note", trips_from_the_third_note)

    harness.drain(PIPEDRIVE)

    rows = harness.deliveries()
    assert [(row.status, row.attempts) for row in rows[:2]] == [(DeliveryStatus.SUCCEEDED, 1)] * 2
    assert (rows[2].status, rows[2].last_error_class) == (DeliveryStatus.FAILED, "internal_error")


def test_an_outcome_the_store_cannot_record_counts_as_a_failed_attempt(make_harness):
    harness = make_harness({BROKEN: {"kind": "tests.delivery.broken_modules:FailsWithoutAMessage", "max_attempts": 2}})
    harness.receive(jivo_chat(460, phone="+79161230460"))

    harness.drain(BROKEN)
    (first,) = harness.deliveries()
    harness.clock.advance_to(first.next_attempt_at)
    harness.drain(BROKEN)

    (row,) = harness.deliveries()
    assert (first.status, first.last_error_class) == (DeliveryStatus.FAILED, "internal_error")
    assert "recording the outcome failed: TypeError" in first.last_error
    assert (row.status, row.attempts) == (DeliveryStatus.DEAD, 2) and row.last_error.startswith("gave up after 2")


def test_a_module_that_fails_to_start_claims_nothing(make_harness):
    harness = make_harness({BROKEN: {"kind": "tests.delivery.broken_modules:FailsToStart"}})
    harness.receive(jivo_chat(461, phone="+79161230461"))

    with pytest.raises(RuntimeError, match="cannot start"):
        harness.drain(BROKEN)

    (row,) = harness.deliveries()
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 0)
