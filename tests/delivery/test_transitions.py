"""Each delivery state transition: pending → in_flight → succeeded | failed (will retry) | dead, with reasons."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from crm_sync.contacts import get_cards
from crm_sync.delivery.claims import claim_due
from crm_sync.delivery.snapshots import build_requests
from crm_sync.destinations.content import has_marker
from crm_sync.schema import DeliveryStatus
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import hubspot_settings
from tests.delivery.provider_events import jivo_finished
from tests.fakes.faults import Fault
from tests.fakes.hubspot import migration_in_progress
from tests.support.waiting import wait_until

NAME = "hubspot-main"
UPSERT = "batch/upsert"
CONTACT_READ = "contacts/batch/read"   # a delivery's first call


@pytest.fixture
def harness(make_harness, hubspot_fake):
    return make_harness({NAME: hubspot_settings(hubspot_fake, max_attempts=4, max_age_seconds=3600,
                                                retry_initial_seconds=10, retry_max_seconds=300)})


def only(harness):
    (row,) = harness.deliveries()
    return row


def test_a_successful_delivery_records_the_crm_ids_and_links_the_record_to_the_contact(harness, hubspot_fake):
    harness.receive(jivo_chat(201, name="Ivan Petrov", phone="+79161230101"))

    report = harness.drain(NAME)

    row = only(harness)
    (record,) = hubspot_fake.records_for(row.contact_id)
    assert report.succeeded == 1
    assert (row.status, row.attempts, row.delivered_revision) == (DeliveryStatus.SUCCEEDED, 1, 1)
    assert row.crm_contact_id == record["id"] and row.crm_interaction_id in hubspot_fake.notes
    assert row.next_attempt_at is None and row.succeeded_at is not None and row.last_error is None
    with harness.runtime.sessions() as session:
        card = get_cards(session, [row.contact_id])[row.contact_id]
    assert card.crm_links == {NAME: f"https://app.hubspot.com/contacts/4242/record/0-1/{record['id']}"}


def test_a_transient_failure_is_retried_after_a_jittered_backoff(harness, hubspot_fake):
    harness.receive(jivo_chat(202, phone="+79161230102"))
    hubspot_fake.faults.script(Fault.server_error(UPSERT))
    started = harness.clock.now()

    harness.drain(NAME)

    row = only(harness)
    assert (row.status, row.attempts, row.last_error_class, row.last_status) == (
        DeliveryStatus.FAILED, 1, "crm_unavailable", 502)
    assert started <= row.next_attempt_at <= harness.clock.now() + timedelta(seconds=10)
    harness.clock.advance_to(row.next_attempt_at)
    harness.drain(NAME)
    assert (only(harness).status, only(harness).attempts) == (DeliveryStatus.SUCCEEDED, 2)


def test_a_delivery_is_not_attempted_before_its_next_attempt_time(harness, hubspot_fake):
    harness.receive(jivo_chat(203, phone="+79161230103"))
    hubspot_fake.faults.script(Fault.respond(503, {"message": "maintenance"}, UPSERT, {"Retry-After": "60"}))
    harness.drain(NAME)
    calls = len(hubspot_fake.calls)
    harness.clock.advance_to(only(harness).next_attempt_at - timedelta(seconds=10))

    report = harness.drain(NAME)

    assert (report.batches, len(hubspot_fake.calls), only(harness).status) == (0, calls, DeliveryStatus.FAILED)


def test_the_next_attempt_honours_retry_after_and_pauses_the_destination(harness, hubspot_fake):
    harness.receive(jivo_chat(204, phone="+79161230104"), jivo_chat(205, phone="+79161230105"))
    hubspot_fake.faults.script(Fault.rate_limit(retry_after=120, match=UPSERT))
    before = harness.clock.now()

    harness.drain(NAME)

    rows = harness.deliveries()
    assert {row.last_error_class for row in rows} == {"rate_limit"}
    assert all(row.next_attempt_at >= before + timedelta(seconds=120) for row in rows)
    assert harness.state(NAME).throttled_until >= before + timedelta(seconds=120)
    harness.clock.advance(110)
    assert harness.drain(NAME).stopped == "paused"
    harness.clock.advance(11)
    harness.drain(NAME)
    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 2}


def test_a_migration_in_progress_pauses_the_destination_until_its_retry_after(harness, hubspot_fake):
    harness.receive(jivo_chat(211, phone="+79161230111"), jivo_chat(212, phone="+79161230112"))
    hubspot_fake.faults.script(migration_in_progress(retry_after=7200, match=UPSERT))
    before = harness.clock.now()

    harness.drain(NAME)

    rows = harness.deliveries()
    assert {(row.status, row.last_error_class, row.last_status) for row in rows} == {
        (DeliveryStatus.FAILED, "crm_migrating", 477)}
    assert harness.state(NAME).throttled_until >= before + timedelta(seconds=7200)
    harness.clock.advance(7100)
    assert harness.drain(NAME).stopped == "paused"
    harness.clock.advance(101)
    harness.drain(NAME)
    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 2}


def test_a_delivery_throttled_more_often_than_max_attempts_still_succeeds(harness, hubspot_fake):
    harness.receive(jivo_chat(213, phone="+79161230113"))
    hubspot_fake.faults.script(*[Fault.rate_limit(retry_after=30, match=UPSERT) for _ in range(6)])

    harness.drain_until_settled()

    row = only(harness)
    assert (row.status, row.attempts) == (DeliveryStatus.SUCCEEDED, 7)   # 6 refusals, max_attempts 4
    assert len(hubspot_fake.notes_of(row.crm_contact_id)) == 1


def test_throttling_does_not_spare_a_delivery_its_real_failures(harness, hubspot_fake):
    harness.receive(jivo_chat(214, phone="+79161230114"))
    hubspot_fake.faults.script(*[Fault.rate_limit(retry_after=30, match=CONTACT_READ) for _ in range(3)])
    hubspot_fake.faults.server_error_rate = 1.0   # after the refusals, every call fails

    harness.drain_until_settled()

    row = only(harness)
    assert (row.status, row.attempts, row.last_error_class) == (DeliveryStatus.DEAD, 7, "crm_unavailable")
    assert row.last_error.startswith("gave up after 4 attempt(s)")


def test_a_delivery_throttled_past_its_max_age_goes_dead(harness, hubspot_fake):
    harness.receive(jivo_chat(215, phone="+79161230115"))
    hubspot_fake.faults.rate_limit_rate, hubspot_fake.faults.retry_after = 1.0, 600

    harness.drain_until_settled()

    row = only(harness)
    assert (row.status, row.last_error_class) == (DeliveryStatus.DEAD, "rate_limit")
    assert row.attempts > 4 and "max_age_seconds 3600" in row.last_error


def test_a_permanent_failure_goes_dead_at_once_with_its_reason(harness, hubspot_fake):
    harness.receive(jivo_chat(206, phone="+79161230106"))
    hubspot_fake.faults.script(Fault.respond(401, {"status": "error", "message": "Authentication credentials not "
                                                   "found.", "category": "INVALID_AUTHENTICATION"}, match=UPSERT))

    report = harness.drain(NAME)

    row = only(harness)
    assert report.dead == 1
    assert (row.status, row.attempts, row.last_error_class, row.last_status) == (DeliveryStatus.DEAD, 1, "auth", 401)
    assert "Authentication credentials" in row.last_error and row.next_attempt_at is None


def test_a_delivery_that_keeps_failing_goes_dead_after_max_attempts(harness, hubspot_fake):
    harness.receive(jivo_chat(207, phone="+79161230107"))
    hubspot_fake.faults.server_error_rate = 1.0

    harness.drain_until_settled()

    row = only(harness)
    assert (row.status, row.attempts, row.last_error_class) == (DeliveryStatus.DEAD, 4, "crm_unavailable")
    assert row.last_error.startswith("gave up after 4 attempt(s)")


def test_a_delivery_older_than_max_age_goes_dead_at_its_next_failure(harness, hubspot_fake):
    harness.receive(jivo_chat(208, phone="+79161230108"))
    hubspot_fake.faults.server_error_rate = 1.0
    harness.drain(NAME)
    harness.clock.advance(3601)

    harness.drain(NAME)

    row = only(harness)
    assert (row.status, row.attempts) == (DeliveryStatus.DEAD, 2)
    assert "max_age_seconds 3600" in row.last_error


def test_new_data_while_in_flight_is_delivered_again_afterwards(harness, hubspot_fake):
    harness.receive(jivo_finished(209, "+79161230109", [("visitor", "Hello", 1665396476)]))
    hubspot_fake.faults.latency_ms = 300
    drain = threading.Thread(target=harness.drain, args=(NAME,))
    drain.start()
    wait_until(lambda: only(harness).status == DeliveryStatus.IN_FLIGHT, what="the delivery in flight")

    harness.receive(jivo_finished(209, "+79161230109", [("visitor", "Hello", 1665396476),
                                                        ("agent", "Hi there", 1665396490)]))
    drain.join()

    row = only(harness)
    assert (row.status, row.revision, row.delivered_revision, row.attempts) == (DeliveryStatus.SUCCEEDED, 2, 2, 2)
    notes = [note["properties"]["hs_note_body"] for note in hubspot_fake.notes_of(row.crm_contact_id)]
    assert [has_marker(notes[0], f"{NAME}:i1:r1"), has_marker(notes[1], f"{NAME}:i1:r2")] == [True, True]
    assert "Hi there" not in notes[0] and "Hi there" in notes[1]


def test_a_delivery_orphaned_by_a_dead_drainer_is_claimed_again_and_written_once(harness, hubspot_fake, build_once):
    harness.receive(jivo_chat(210, phone="+79161230110"))
    with harness.runtime.sessions.begin() as session:   # a drainer claims it, writes to the CRM, and dies
        claimed = claim_due(session, NAME, harness.clock.now(), 10)
        requests = build_requests(session, NAME, claimed)
    build_once(NAME).deliver(requests[claimed[0].delivery_id])

    harness.drain(NAME)

    row = only(harness)
    assert (row.status, row.attempts) == (DeliveryStatus.SUCCEEDED, 2)
    assert len(hubspot_fake.notes_of(row.crm_contact_id)) == 1


@pytest.fixture
def build_once(harness):
    """The destination module of a configured destination, on its own client (a drainer that dies afterwards)."""
    import httpx

    from crm_sync.destinations import get_destination_class

    clients = []

    def build(name):
        settings = harness.runtime.settings.destinations[name]
        clients.append(httpx.Client(timeout=settings.timeout_seconds))
        return get_destination_class(settings.kind)(settings, clients[-1])

    yield build
    for client in clients:
        client.close()
