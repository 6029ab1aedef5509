"""The done-when run, smaller, as production runs it: a real `crm-ingest worker` process on Redis and PostgreSQL,
events in through /hooks, drains woken after each event and by beat-less sweeps, faults on at random."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest

from crm_sync.schema import DeliveryStatus
from ingest.runtime import Runtime
from ingest.schema import Event, EventStatus
from tests.conftest import truncate_postgres
from tests.contacts.provider_requests import PROVIDER_SOURCES
from tests.delivery.conftest import Harness, hubspot_settings, pipedrive_settings, write_config
from tests.delivery.provider_events import people, traffic
from tests.delivery.test_soak import assert_each_person_once, assert_nobody_twice, script_permanent_faults, \
    switch_faults_off, switch_faults_on
from tests.support.waiting import wait_until
from tests.support.workers import start_worker_process

SEED = 7_0707
PEOPLE, REQUESTS = 30, 120
FAST_RETRIES = {"timeout_seconds": 1.0, "max_attempts": 5, "retry_initial_seconds": 0.2, "retry_max_seconds": 1,
                "circuit_cooldown_seconds": 1, "circuit_max_cooldown_seconds": 2}


@pytest.fixture
def production(make_settings, postgres_schema_url, redis_broker_url, hubspot_fake, pipedrive_fake, tmp_path):
    truncate_postgres(postgres_schema_url)
    settings = make_settings(postgres_schema_url, redis_broker_url, sources=PROVIDER_SOURCES, destinations={
        "hubspot-main": hubspot_settings(hubspot_fake, **FAST_RETRIES),
        "pipedrive": pipedrive_settings(pipedrive_fake, **FAST_RETRIES)})
    runtime = Runtime(settings)
    config = write_config(tmp_path / "crm-ingest.toml", settings)
    worker = start_worker_process(config, concurrency=2, log_path=tmp_path / "worker.log")
    yield Harness(runtime), config, (hubspot_fake, pipedrive_fake)
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    runtime.close()


def settled(harness: Harness) -> bool:
    """Every event finished and every delivery succeeded or dead; meanwhile, sweep as beat would."""
    harness.runtime.outbox.relay()
    harness.runtime.delivery.schedule()
    with harness.runtime.sessions() as session:
        waiting = session.query(Event).filter(Event.status.in_([EventStatus.RECEIVED, EventStatus.PROCESSING])).count()
    statuses = harness.statuses()
    return not waiting and bool(statuses) and set(statuses) <= {DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD}


def test_a_worker_process_delivers_everything_through_random_faults(production):
    harness, config, crms = production
    rng = random.Random(SEED)
    for offset, fake in enumerate(crms):
        switch_faults_on(fake, SEED + offset)
        script_permanent_faults(fake, rng)
    everyone = people(PEOPLE, first=5000)

    harness.send(*traffic(rng, everyone, REQUESTS))
    wait_until(lambda: settled(harness), timeout=90, interval=0.5, what="every delivery settled")

    first_round = harness.deliveries()
    dead = [row for row in first_round if row.status == DeliveryStatus.DEAD]
    assert dead and all(row.last_error_class and row.last_error for row in dead)
    assert_nobody_twice(crms, everyone)
    for fake in crms:
        switch_faults_off(fake)
    retried = subprocess.run([sys.executable, "-m", "workers.cli", "deliveries", "retry", "--status", "dead"],
                             env={**os.environ, "CRM_INGEST_CONFIG": str(config)}, capture_output=True, text=True,
                             timeout=60)
    assert retried.returncode == 0, retried.stderr
    wait_until(lambda: settled(harness) and set(harness.statuses()) == {DeliveryStatus.SUCCEEDED}, timeout=60,
               interval=0.5, what="every dead delivery retried")

    assert len(harness.deliveries()) == len(first_round)
    assert_each_person_once(harness, crms, everyone)
