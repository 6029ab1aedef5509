"""Waking drainers: after processing, and from the sweep, only destinations with due work that nobody drains."""
from __future__ import annotations

import pytest

from crm_sync.delivery.claims import claim_due
from crm_sync.delivery.engine import DeliveryEngine
from crm_sync.delivery.lease import take_lease
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import hubspot_settings, kommo_settings, pipedrive_settings
from tests.fakes.faults import Fault


@pytest.fixture
def harness(make_harness, hubspot_fake, kommo_fake, pipedrive_fake):
    return make_harness({"hubspot-main": hubspot_settings(hubspot_fake), "kommo": kommo_settings(kommo_fake),
                         "pipedrive": pipedrive_settings(pipedrive_fake)})


@pytest.fixture
def engine(harness):
    """The harness's engine, publishing to the runtime's (embedded) broker."""
    runtime = harness.runtime
    return DeliveryEngine(runtime.settings, runtime.sessions, celery=lambda: runtime.celery, clock=harness.clock)


def test_the_sweep_wakes_destinations_with_due_work_and_nobody_draining_them(harness, engine):
    harness.receive(jivo_chat(801, phone="+79161230801"))
    harness.drain("pipedrive")   # nothing left to do there
    assert take_lease(harness.runtime.sessions, "kommo", "a-busy-drainer", harness.clock)

    assert engine.due() == ["hubspot-main", "kommo"]
    assert engine.schedule() == ["hubspot-main"]


def test_a_delivery_waiting_for_its_backoff_is_not_due_until_then(harness, engine, hubspot_fake):
    harness.receive(jivo_chat(802, phone="+79161230802"))
    hubspot_fake.faults.script(Fault.respond(503, {"message": "maintenance"}, "batch/upsert", {"Retry-After": "60"}))
    harness.drain("hubspot-main")
    for name in ("kommo", "pipedrive"):
        harness.drain(name)

    assert engine.due() == []
    harness.clock.advance_to(harness.deliveries("hubspot-main")[0].next_attempt_at)
    assert engine.due() == ["hubspot-main"]


def test_a_delivery_left_in_flight_by_a_dead_drainer_is_due_again(harness, engine):
    harness.receive(jivo_chat(803, phone="+79161230803"))
    for name in ("kommo", "pipedrive"):
        harness.drain(name)
    with harness.runtime.sessions.begin() as session:
        claim_due(session, "hubspot-main", harness.clock.now(), 10)   # claimed, then the worker died

    assert engine.schedule() == ["hubspot-main"]
    assert harness.drain("hubspot-main").succeeded == 1


def test_processing_wakes_only_the_destinations_that_got_new_work(harness, engine):
    assert harness.receive(jivo_chat(804, phone="+79161230804")) == {"hubspot-main", "kommo", "pipedrive"}
    assert take_lease(harness.runtime.sessions, "kommo", "a-busy-drainer", harness.clock)

    assert engine.wake({"hubspot-main", "kommo"}) == ["hubspot-main"]
    assert harness.receive(jivo_chat(804, phone="+79161230804")) == set()   # a redelivery: no new work
