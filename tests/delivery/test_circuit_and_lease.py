"""The circuit breaker pauses a destination that keeps failing and resumes it by itself; the lease admits one
drainer per destination."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from crm_sync.delivery.clock import SYSTEM_CLOCK
from crm_sync.delivery.engine import DeliveryEngine
from crm_sync.delivery.lease import LEASE_SECONDS, Heartbeat, ensure_state, take_lease
from crm_sync.schema import DeliveryStatus, DestinationState
from ingest.db import transaction
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import VirtualClock, hubspot_settings

NAME = "hubspot-main"


@pytest.fixture
def harness(make_harness, hubspot_fake):
    return make_harness({NAME: hubspot_settings(hubspot_fake, batch_size=1, max_attempts=50, circuit_failures=3,
                                                circuit_cooldown_seconds=60, circuit_max_cooldown_seconds=600,
                                                retry_initial_seconds=1, retry_max_seconds=1)})


def fail_until_open(harness) -> None:
    for _ in range(10):
        harness.drain(NAME)
        if harness.state(NAME).circuit_open_until:
            return
        harness.clock.advance(1.01)
    raise AssertionError("the circuit never opened")


def test_the_circuit_opens_after_consecutive_failed_batches_and_attempts_nothing_while_open(harness, hubspot_fake):
    harness.receive(*[jivo_chat(400 + n, phone=f"+7916123030{n}") for n in range(5)])
    hubspot_fake.faults.server_error_rate = 1.0

    fail_until_open(harness)

    state = harness.state(NAME)
    assert (state.consecutive_failures, state.circuit_opened) == (3, 1)
    assert timedelta(seconds=30) < state.circuit_open_until - harness.clock.now() <= timedelta(seconds=60)
    calls = len(hubspot_fake.calls)
    harness.clock.advance(30)
    report = harness.drain(NAME)
    assert (report.stopped, report.resume_at, len(hubspot_fake.calls)) == ("paused", state.circuit_open_until, calls)


def test_the_circuit_resumes_by_itself_after_a_successful_trial(harness, hubspot_fake):
    harness.receive(*[jivo_chat(410 + n, phone=f"+7916123031{n}") for n in range(5)])
    hubspot_fake.faults.server_error_rate = 1.0
    fail_until_open(harness)
    hubspot_fake.faults.server_error_rate = 0.0
    harness.clock.advance_to(harness.state(NAME).circuit_open_until)

    harness.drain_until_settled()

    state = harness.state(NAME)
    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 5}
    assert (state.consecutive_failures, state.circuit_opened, state.circuit_open_until) == (0, 0, None)


def test_a_failed_trial_opens_the_circuit_again_for_twice_as_long(harness, hubspot_fake):
    harness.receive(*[jivo_chat(420 + n, phone=f"+7916123032{n}") for n in range(5)])
    hubspot_fake.faults.server_error_rate = 1.0
    fail_until_open(harness)
    harness.clock.advance_to(harness.state(NAME).circuit_open_until)
    calls = len(hubspot_fake.calls)

    report = harness.drain(NAME)

    state = harness.state(NAME)
    assert report.batches == 1 and len(hubspot_fake.calls) == calls + 1   # one trial delivery, one call
    assert (state.consecutive_failures, state.circuit_opened) == (4, 2)
    assert timedelta(seconds=90) < state.circuit_open_until - harness.clock.now() <= timedelta(seconds=120)


def test_a_circuit_reopened_a_thousand_times_pauses_for_the_max_cooldown(harness, hubspot_fake):
    harness.receive(jivo_chat(425, phone="+79161230425"))
    hubspot_fake.faults.server_error_rate = 1.0
    with transaction(harness.runtime.sessions) as session:   # eleven days of a CRM down at the 600 s cap
        ensure_state(session, NAME, harness.clock.now())
        session.execute(update(DestinationState).where(DestinationState.destination == NAME)
                        .values(consecutive_failures=3, circuit_opened=1024))
    before = harness.clock.now()

    harness.drain(NAME)

    state = harness.state(NAME)
    assert state.circuit_opened == 1025
    assert before + timedelta(seconds=600) <= state.circuit_open_until <= harness.clock.now() + timedelta(seconds=600)


def test_a_destination_leased_by_another_drainer_is_left_alone(harness, hubspot_fake):
    harness.receive(jivo_chat(430, phone="+79161230400"))
    assert take_lease(harness.runtime.sessions, NAME, "another-worker", harness.clock)

    report = harness.drain(NAME)

    assert (report.stopped, len(hubspot_fake.calls)) == ("busy", 0)
    assert harness.statuses() == {DeliveryStatus.PENDING: 1}


def test_a_lease_whose_holder_died_runs_out_and_the_next_drainer_takes_over(harness, hubspot_fake):
    harness.receive(jivo_chat(431, phone="+79161230401"))
    assert take_lease(harness.runtime.sessions, NAME, "a-worker-that-died", harness.clock)
    harness.clock.advance(LEASE_SECONDS + 1)

    report = harness.drain(NAME)

    assert (report.stopped, report.succeeded) == ("idle", 1)


def test_a_heartbeat_keeps_renewing_the_lease_while_its_drainer_works(harness):
    sessions, seconds = harness.runtime.sessions, 0.4
    assert take_lease(sessions, NAME, "a-slow-drainer", SYSTEM_CLOCK, seconds)
    first_expiry = harness.state(NAME).lease_until

    with Heartbeat(sessions, NAME, "a-slow-drainer", SYSTEM_CLOCK, seconds) as heartbeat:
        time.sleep(3 * seconds)   # renewals every quarter of the lease: a dozen of them

    assert not heartbeat.lost
    assert harness.state(NAME).lease_until >= first_expiry + timedelta(seconds=2 * seconds)


def test_a_heartbeat_that_finds_another_owner_says_the_lease_is_lost(harness):
    sessions, seconds = harness.runtime.sessions, 0.4
    assert take_lease(sessions, NAME, "a-paused-drainer", SYSTEM_CLOCK, seconds)
    later = VirtualClock()
    later.advance(2 * seconds)
    with Heartbeat(sessions, NAME, "a-paused-drainer", SYSTEM_CLOCK, seconds) as heartbeat:
        # As if the process had been paused past the lease's end and another drainer had taken over.
        assert take_lease(sessions, NAME, "the-next-drainer", later)
        time.sleep(seconds)

    assert heartbeat.lost
    assert harness.state(NAME).lease_owner == "the-next-drainer"


def test_a_worker_whose_clock_runs_ahead_does_not_take_a_lease_that_has_not_run_out(harness, hubspot_fake):
    harness.receive(jivo_chat(432, phone="+79161230432"))
    assert take_lease(harness.runtime.sessions, NAME, "a-worker-on-time", SYSTEM_CLOCK)
    ahead = VirtualClock()
    ahead.offset = LEASE_SECONDS + 5   # this machine's clock is wrong; no time has passed

    report = DeliveryEngine(harness.runtime.settings, harness.runtime.sessions, clock=ahead).drain(NAME)

    assert (report.stopped, len(hubspot_fake.calls)) == ("busy", 0)


def test_a_worker_whose_clock_runs_behind_takes_over_a_lease_that_has_run_out(harness):
    assert take_lease(harness.runtime.sessions, NAME, "a-worker-that-died", SYSTEM_CLOCK, seconds=0)
    behind = VirtualClock()
    behind.offset = -60.0

    assert take_lease(harness.runtime.sessions, NAME, "a-worker-behind", behind)
    assert harness.state(NAME).lease_owner == "a-worker-behind"


def test_two_drainers_at_once_never_deliver_the_same_batch_twice(make_harness, hubspot_fake, database_url):
    import threading

    harness = make_harness({NAME: hubspot_settings(hubspot_fake, batch_size=2)})
    harness.receive(*[jivo_chat(440 + n, phone=f"+7916123044{n}") for n in range(8)])
    hubspot_fake.faults.latency_ms = 20
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(harness.drain(NAME))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 8}
    assert sum(report.succeeded for report in reports) == 8
    assert {row.attempts for row in harness.deliveries()} == {1}
    assert hubspot_fake.count_calls("notes/batch/create") == 4
