"""A drainer whose lease may have run out calls the CRM no more: a worker frozen past its lease (a paused VM, heavy
swapping) must not finish its batch as first attempts, which look nothing up, while the next drainer sends the same
deliveries again."""
from __future__ import annotations

import pytest

from crm_sync.delivery.clock import SYSTEM_CLOCK
from crm_sync.delivery.lease import LEASE_SECONDS, Heartbeat, LeaseLost, lease_clock, take_lease
from crm_sync.schema import DeliveryStatus
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import pipedrive_settings
from tests.fakes.faults import Fault

PIPEDRIVE = "pipedrive-main"
CHATS = 3


@pytest.fixture
def harness(make_harness, pipedrive_fake):
    return make_harness({PIPEDRIVE: pipedrive_settings(pipedrive_fake)})


def test_a_lease_surely_held_for_the_call_lets_it_through(harness):
    assert take_lease(harness.runtime.sessions, PIPEDRIVE, "a-drainer", SYSTEM_CLOCK)

    with Heartbeat(harness.runtime.sessions, PIPEDRIVE, "a-drainer", SYSTEM_CLOCK) as lease:
        lease.check_before_call(LEASE_SECONDS / 2)

    assert not lease.lost


def test_a_lease_not_renewed_for_most_of_its_length_refuses_the_next_call_before_any_renewal_says_so(harness):
    taken_at = lease_clock(SYSTEM_CLOCK) - LEASE_SECONDS * 0.9   # taken, then the process was frozen
    assert take_lease(harness.runtime.sessions, PIPEDRIVE, "a-frozen-drainer", SYSTEM_CLOCK)

    with Heartbeat(harness.runtime.sessions, PIPEDRIVE, "a-frozen-drainer", SYSTEM_CLOCK, taken_at=taken_at) as lease:
        with pytest.raises(LeaseLost):
            lease.check_before_call(LEASE_SECONDS / 2)

    assert lease.lost


def test_a_drainer_frozen_past_its_lease_sends_nothing_more_and_nobody_is_written_twice(harness, pipedrive_fake):
    harness.receive(*[jivo_chat(470 + n, phone=f"+7916123047{n}") for n in range(CHATS)])
    calls_at_the_freeze = []

    def frozen_then_overtaken(answer):
        """The first person's write lands; then the worker stops for longer than its lease, and another drainer
        takes the lease and delivers the batch (its first person found, the other two written)."""
        harness.clock.advance(LEASE_SECONDS + 1)
        harness.drain(PIPEDRIVE)
        calls_at_the_freeze.append(len(pipedrive_fake.calls))
        return answer
    pipedrive_fake.faults.script(Fault.rewrite_answer("POST /api/v2/persons", frozen_then_overtaken))

    stale = harness.drain(PIPEDRIVE)

    assert stale.stopped == "busy"
    assert len(pipedrive_fake.calls) == calls_at_the_freeze[0] + 1   # the frozen write's own call, and no other
    people = [pipedrive_fake.persons_with(phone=f"+7916123047{n}") for n in range(CHATS)]
    assert [len(found) for found in people] == [1] * CHATS
    assert [len(pipedrive_fake.notes_of(found[0]["id"])) for found in people] == [1] * CHATS
    assert harness.statuses(PIPEDRIVE) == {DeliveryStatus.SUCCEEDED: CHATS}
