"""Planning: one delivery per interaction and destination, re-armed only by a change worth telling the CRM."""
from __future__ import annotations

import pytest

from crm_sync.delivery.planning import fingerprint
from crm_sync.schema import DeliveryStatus, StoredInteraction
from ingest.events import reset_for_replay
from tests.contacts.provider_requests import jivo_chat, roistat_lead
from tests.delivery.conftest import hubspot_settings, kommo_settings
from tests.delivery.provider_events import jivo_finished
from tests.fakes.faults import Fault


@pytest.fixture
def harness(make_harness, hubspot_fake, kommo_fake):
    return make_harness({"hubspot-main": hubspot_settings(hubspot_fake), "kommo": kommo_settings(kommo_fake)})


def test_each_interaction_gets_one_delivery_per_destination(harness):
    woken = harness.receive(jivo_chat(101, phone="+79161230001"), roistat_lead("L-1", phone="+79161230002"))

    rows = harness.deliveries()
    assert woken == {"hubspot-main", "kommo"}
    assert sorted((row.destination, row.interaction_id) for row in rows) == [
        ("hubspot-main", 1), ("hubspot-main", 2), ("kommo", 1), ("kommo", 2)]
    assert {(row.status, row.revision, row.attempts) for row in rows} == {(DeliveryStatus.PENDING, 1, 0)}
    assert rows[0].idempotency_key == f"hubspot-main:i{rows[0].interaction_id}:r1"


def test_an_interaction_two_events_of_one_message_report_is_planned_once_as_the_later_left_it(harness):
    harness.send(jivo_chat(105, phone="+79161230006"), jivo_chat(105, phone="+79161230006",
                                                                    event_name="chat_finished"))
    woken = harness.process_waiting()

    rows = harness.deliveries()
    with harness.runtime.sessions() as session:
        stored = session.get(StoredInteraction, rows[0].interaction_id)
    assert woken == {"hubspot-main", "kommo"}
    assert [(row.destination, row.revision) for row in rows] == [("hubspot-main", 1), ("kommo", 1)]
    assert {row.fingerprint for row in rows} == {fingerprint(stored)}
    assert stored.state == "closed"  # what chat_finished says


def test_a_redelivered_or_replayed_event_plans_nothing(harness):
    harness.receive(jivo_chat(102, phone="+79161230003"))
    before = [(row.id, row.revision, row.updated_at) for row in harness.deliveries()]

    redelivered = harness.receive(jivo_chat(102, phone="+79161230003"))
    with harness.runtime.sessions.begin() as session:
        reset_for_replay(session, [1])
    replayed = harness.process_waiting()

    assert redelivered == set() and replayed == set()
    assert [(row.id, row.revision, row.updated_at) for row in harness.deliveries()] == before


def test_new_transcript_messages_re_arm_a_delivered_interaction(harness):
    harness.receive(jivo_finished(103, "+79161230004", [("visitor", "Hello", 1665396476)]))
    harness.drain_until_settled()
    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 2}

    woken = harness.receive(jivo_finished(103, "+79161230004", [("visitor", "Hello", 1665396476),
                                                                ("agent", "Hi! How can I help?", 1665396483)]))

    assert woken == {"hubspot-main", "kommo"}
    assert {(row.status, row.revision, row.delivered_revision) for row in harness.deliveries()} == {
        (DeliveryStatus.PENDING, 2, 1)}


def test_a_state_change_re_arms_a_delivered_interaction(harness):
    harness.receive(jivo_chat(104, phone="+79161230005"))
    harness.drain_until_settled()

    harness.receive(jivo_chat(104, phone="+79161230005", event_name="chat_finished"))

    assert {(row.status, row.revision) for row in harness.deliveries()} == {(DeliveryStatus.PENDING, 2)}
    harness.drain_until_settled()
    assert {(row.status, row.delivered_revision) for row in harness.deliveries()} == {(DeliveryStatus.SUCCEEDED, 2)}


def test_new_data_for_a_delivery_waiting_to_retry_keeps_its_backoff(harness, hubspot_fake):
    harness.receive(jivo_finished(105, "+79161230006", [("visitor", "Hello", 1665396476)]))
    hubspot_fake.faults.script(Fault.server_error("batch/upsert"))
    harness.drain("hubspot-main")
    waiting = harness.deliveries("hubspot-main")[0]

    harness.receive(jivo_finished(105, "+79161230006", [("visitor", "Hello", 1665396476), ("agent", "Hi", 1665396490)]))

    row = harness.deliveries("hubspot-main")[0]
    assert (row.status, row.revision, row.next_attempt_at, row.armed_at) == (
        DeliveryStatus.FAILED, 2, waiting.next_attempt_at, waiting.armed_at)
    harness.clock.advance_to(row.next_attempt_at)
    harness.drain("hubspot-main")
    assert (harness.delivery(row.id).status, harness.delivery(row.id).delivered_revision) == (
        DeliveryStatus.SUCCEEDED, 2)


def test_new_data_gives_a_dead_delivery_a_new_round(harness, hubspot_fake):
    harness.receive(jivo_finished(106, "+79161230007", [("visitor", "Hello", 1665396476)]))
    hubspot_fake.faults.script(Fault.respond(400, {"message": "Property values were not valid"}, "batch/upsert"))
    harness.drain("hubspot-main")
    assert harness.deliveries("hubspot-main")[0].status == DeliveryStatus.DEAD

    harness.receive(jivo_finished(106, "+79161230007", [("visitor", "Hello", 1665396476), ("agent", "Hi", 1665396490)]))

    row = harness.deliveries("hubspot-main")[0]
    assert (row.status, row.revision, row.attempts, row.attempts_at_arming) == (DeliveryStatus.PENDING, 2, 1, 1)
