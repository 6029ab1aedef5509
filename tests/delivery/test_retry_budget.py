"""Each revision's retry budget is its own, and a CRM's "not now" without a delay is waited out for longer and longer
with the whole destination paused, as a Retry-After would be."""
from __future__ import annotations

from typing import Callable

import pytest

from crm_sync.schema import DeliveryStatus
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import hubspot_settings
from tests.delivery.provider_events import jivo_finished
from tests.fakes.faults import Fault
from tests.fakes.webhook import WebhookReceiver

NAME = "hubspot-main"
HOOK = "audit-hook"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
UPSERT = "POST /crm/v3/objects/contacts/batch/upsert"
CONTACT_READ = "contacts/batch/read"
FIRST = [("visitor", "Hello", 1665396476)]
INVALID = Fault.respond(400, {"status": "error", "message": "Property values were not valid",
                              "category": "VALIDATION_ERROR"})


@pytest.fixture
def harness(make_harness, hubspot_fake):
    return make_harness({NAME: hubspot_settings(hubspot_fake, max_attempts=4, max_age_seconds=3600,
                                                retry_initial_seconds=10, retry_max_seconds=300)})


def answer_upserts(fake, *answers: Fault | Callable[[], Fault | None] | None) -> None:
    """The fake answers its successive contact upserts so: a Fault, None (as usual), or a callable run while that
    attempt is in flight, whose Fault (or None) answers it."""
    pending, usual = list(answers), fake.faults.next_fault

    def next_fault(request):
        if pending and f"{request.method} {request.path}" == UPSERT:
            answer = pending.pop(0)
            return answer() if callable(answer) else answer
        return usual(request)
    fake.faults.next_fault = next_fault


def fail_three_times_then(harness, hubspot_fake, last_attempt: Fault | None) -> None:
    """Three of the first revision's four attempts fail; during the fourth (answered `last_attempt`) a second
    revision arrives, and the same drain then tries it once, which fails."""
    def second_revision_arrives():
        harness.receive(jivo_finished(216, "+79161230116", FIRST + [("agent", "Hi there", 1665396490)]))
        hubspot_fake.faults.script(Fault.server_error(CONTACT_READ))   # the second revision's first call
        return last_attempt
    answer_upserts(hubspot_fake, *[Fault.server_error()] * 3, second_revision_arrives)
    harness.receive(jivo_finished(216, "+79161230116", FIRST))
    for _ in range(3):
        harness.drain(NAME)
        harness.clock.advance_to(harness.deliveries()[0].next_attempt_at)
    harness.drain(NAME)


def test_a_revision_that_arrives_during_a_successful_last_attempt_gets_a_budget_of_its_own(harness, hubspot_fake):
    fail_three_times_then(harness, hubspot_fake, None)

    (row,) = harness.deliveries()
    assert (row.revision, row.delivered_revision, row.attempts) == (2, 1, 5)
    assert (row.status, row.last_error_class) == (DeliveryStatus.FAILED, "crm_unavailable")


def test_a_revision_that_arrives_during_a_refused_last_attempt_gets_a_budget_of_its_own(harness, hubspot_fake):
    fail_three_times_then(harness, hubspot_fake, INVALID)

    (row,) = harness.deliveries()
    assert (row.revision, row.delivered_revision, row.attempts) == (2, None, 5)
    assert (row.status, row.last_error_class) == (DeliveryStatus.FAILED, "crm_unavailable")


@pytest.fixture
def hook(make_harness, fakes):
    receiver = fakes(WebhookReceiver)
    receiver.faults.rate_limit_rate, receiver.faults.retry_after = 1.0, None   # every POST: 429, no Retry-After
    return make_harness({HOOK: {"kind": "webhook", "url": f"{receiver.url}/hooks/crm", "secret": SECRET,
                                "timeout_seconds": 5}}), receiver


def test_a_rate_limit_without_retry_after_pauses_the_destination(hook):
    harness, receiver = hook
    harness.receive(jivo_chat(217, phone="+79161230117"))
    harness.drain(HOOK)
    (row,) = harness.deliveries()

    report = harness.drain(HOOK)

    assert (report.stopped, len(receiver.received)) == ("paused", 0)
    assert harness.state(HOOK).throttled_until >= row.next_attempt_at > harness.clock.now()


def test_a_rate_limit_without_retry_after_is_waited_out_longer_each_time(hook):
    harness, _ = hook
    harness.receive(jivo_chat(218, phone="+79161230118"))
    waits = []
    for _ in range(15):
        harness.drain(HOOK)
        (row,) = harness.deliveries()
        waits.append((row.next_attempt_at - harness.clock.now()).total_seconds())
        harness.clock.advance_to(row.next_attempt_at)   # the destination's pause ends then too

    # Each wait is at least half a window that doubles as the round's age does (from retry_initial_seconds = 2 s):
    # by the 15th "not now" it is at least 64 s (less the moment the drain took). None used up an attempt (of 8).
    assert min(waits) >= 0.9 and waits[-1] >= 60
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 15)
