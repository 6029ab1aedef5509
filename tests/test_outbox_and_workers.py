"""At-least-once delivery to the workers and exactly-once effect: broker outages, lost messages, killed workers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from crm_sync.delivery.wake import DRAIN_TASK, SCHEDULE_TASK
from crm_sync.pipeline import process_event
from ingest.db import migrate
from ingest.outbox import INGEST_QUEUE, RELAY_TASK
from ingest.queue_depth import queue_depths
from ingest.retention import PURGE_TASK
from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import GENERIC_TOKEN, close_rabbitmq_connections, make_client
from tests.support.stalling_proxy import QUEUE_DECLARE_INGEST, HoldingProxy
from tests.support.waiting import wait_until
from tests.support.workers import running_worker, start_worker_process, write_config

SLOW_SOURCE = {"slow": {"provider": "tests.support.slow_provider:SlowProvider", "token": GENERIC_TOKEN}}
HEADERS = {"Authorization": f"Bearer {GENERIC_TOKEN}", "Content-Type": "application/json"}


def event_row(runtime, event_id: int = 1) -> Event:
    with runtime.sessions() as session:
        return session.get(Event, event_id)


def test_an_event_reaches_a_real_worker_through_the_embedded_broker(runtime, client):
    client.post("/hooks/generic-main", data=b'{"email": "a@example.com"}', headers=HEADERS)
    with running_worker(runtime):
        wait_until(lambda: event_row(runtime).status == "processed", what="processing")


def test_events_reach_a_real_worker_through_a_broker_server(server_runtime):
    client = make_client(server_runtime)
    for n in range(5):
        client.post("/hooks/generic-main", data=json.dumps({"email": f"n{n}@example.com"}).encode(), headers=HEADERS)
    with running_worker(server_runtime):
        wait_until(lambda: all(event_row(server_runtime, i).status == "processed" for i in range(1, 6)),
                   what="five events processed")


def test_broker_down_at_ingest_still_acknowledges_and_the_relay_delivers_later(
        postgres_schema_url, broker_server, make_settings):
    from tests.conftest import truncate_postgres

    truncate_postgres(postgres_schema_url)
    down = Runtime(make_settings(postgres_schema_url, broker_server.dead_url))
    response = make_client(down).post("/hooks/generic-main", data=b'{"email": "a@example.com"}', headers=HEADERS)
    assert response.status_code == 200
    assert event_row(down).status == "received"
    assert event_row(down).enqueued_at is None, "a failed publish leaves the event as the relay's first pick"
    down.close()

    back = Runtime(make_settings(postgres_schema_url, broker_server.url))
    with running_worker(back):
        assert back.outbox.relay() == 1
        wait_until(lambda: event_row(back).status == "processed", what="processing after the broker came back")
    assert event_row(back).attempts == 1
    back.close()


def test_relay_skips_events_enqueued_recently_and_requeues_stale_ones(database_url, make_settings):
    runtime = Runtime(make_settings(database_url, requeue_after_seconds=3600))
    make_client(runtime).post("/hooks/generic-main", data=b"{}", headers=HEADERS)
    assert runtime.outbox.relay() == 0, "a fresh enqueue is not repeated"
    runtime.close()
    stale = Runtime(make_settings(database_url, requeue_after_seconds=0.001))
    lose_waiting_messages(stale)
    assert stale.outbox.relay() == 1, "a message that never got processed is enqueued again"
    stale.close()


def test_relay_does_not_requeue_stale_events_while_a_backlog_waits_in_the_queue(database_url, make_settings):
    runtime = Runtime(make_settings(database_url, requeue_after_seconds=0.001))
    client = make_client(runtime)
    for number in range(3):
        client.post("/hooks/generic-main", data=b'{"n": %d}' % number, headers=HEADERS)

    assert runtime.outbox.relay() == 0, "behind a backlog a message is still waiting, not lost"
    assert queued_messages(runtime) == 3, "one message per request, and none added by the relay"
    runtime.close()


def test_the_relay_returns_when_rabbitmq_stops_answering_its_queue_depth_read(tmp_path, make_settings,
                                                                            rabbitmq_broker_url):
    """The relay first asks how long the ingest queue is: every wait on that connection is bounded, and the
    connection is dropped without the closing handshake a silent broker would never answer."""
    url = f"sqlite:///{tmp_path}/crm-ingest.db"
    migrate(url)
    server = urlsplit(rabbitmq_broker_url)
    with HoldingProxy(server.hostname, server.port, QUEUE_DECLARE_INGEST) as proxy:
        runtime = Runtime(make_settings(url, proxy.url_for(rabbitmq_broker_url), publish_timeout_seconds=0.5))
        relayed: list[int] = []
        relay = threading.Thread(target=lambda: relayed.append(runtime.outbox.relay()), daemon=True)
        relay.start()
        relay.join(timeout=60)  # a bound on a hang, not a speed: the read fails after BROKER_CHECK_SECONDS
        runtime.close()

    assert proxy.held.is_set(), "the broker went silent at the queue depth read"
    assert not relay.is_alive(), "the relay still waits for a broker that stopped answering"
    assert relayed == [0]


def test_maintenance_and_drain_tasks_run_under_a_time_limit(sqlite_runtime):
    """A relay, sweep or purge waiting on a silent database or broker, or a drain on a CRM answering a byte at a
    time, is stopped rather than holding its pool process (and every later pass queued behind it) for good."""
    tasks = sqlite_runtime.celery.tasks

    limits = {name: (tasks[name].soft_time_limit, tasks[name].time_limit)
              for name in (RELAY_TASK, SCHEDULE_TASK, PURGE_TASK, DRAIN_TASK)}

    assert all(soft and hard and soft < hard for soft, hard in limits.values()), limits


def lose_waiting_messages(runtime: Runtime) -> None:
    with runtime.celery.connection_for_write() as connection:
        connection.default_channel.queue_purge(INGEST_QUEUE)


def queued_messages(runtime: Runtime) -> int:
    depths, _ = queue_depths(runtime.celery, [INGEST_QUEUE], timeout=5)
    return depths[INGEST_QUEUE]


def test_processing_twice_has_the_effect_of_once(runtime, client, generic_headers):
    client.post("/hooks/generic-main", data=b'{"email": "a@example.com"}', headers=generic_headers)
    assert process_event(runtime.sessions, 1) == "processed"
    first = event_row(runtime)
    assert process_event(runtime.sessions, 1) == "skipped"
    again = event_row(runtime)
    assert (again.status, again.attempts, again.result) == ("processed", 1, first.result)


def test_an_event_that_keeps_killing_workers_goes_dead_instead_of_looping(database_url, make_settings):
    runtime = Runtime(make_settings(database_url, max_process_attempts=2))
    make_client(runtime).post("/hooks/generic-main", data=b"{}", headers=HEADERS)
    from ingest.attempts import begin_attempts

    for _ in range(2):  # two attempts that "died" after claiming the event
        begin_attempts(runtime.engine, [1], max_attempts=2)
    assert process_event(runtime.sessions, 1, max_attempts=2) == "skipped"
    event = event_row(runtime)
    assert (event.status, event.error_class) == ("dead", "attempts_exhausted")
    runtime.close()


def start_and_kill_a_worker_mid_task(runtime: Runtime, tmp_path) -> tuple[Path, Path]:
    """One event of the slow provider, a worker process SIGKILLed while it parses it (its main process and pool
    child: no chance to acknowledge or clean up); the worker config and the marker folder (touch `release` to let
    the next parse finish)."""
    config = write_config(runtime, tmp_path / "worker.toml")
    markers = tmp_path / "markers"
    markers.mkdir()
    body = json.dumps({"marker_dir": str(markers), "email": "killed@example.com"}).encode()
    assert make_client(runtime).post("/hooks/slow", data=body, headers=HEADERS).status_code == 200
    first = start_worker_process(config, log_path=tmp_path / "worker1.log")
    wait_until(lambda: (markers / "started").exists(), timeout=60, what="the first worker to start parsing")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert event_row(runtime).status == "processing"
    return config, markers


@contextmanager
def worker_process(config: Path, log_path: Path) -> Iterator[None]:
    worker = start_worker_process(config, log_path=log_path)
    try:
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


@pytest.fixture
def slow_runtime(postgres_schema_url, broker_server, make_settings) -> Iterator[Runtime]:
    from tests.conftest import truncate_postgres

    truncate_postgres(postgres_schema_url)
    runtime = Runtime(make_settings(postgres_schema_url, broker_server.url, sources=SLOW_SOURCE,
                                    requeue_after_seconds=1))
    yield runtime
    runtime.close()


@pytest.mark.timeout(180)
def test_worker_killed_mid_task_still_processes_the_event_once(slow_runtime, tmp_path):
    config, markers = start_and_kill_a_worker_mid_task(slow_runtime, tmp_path)

    (markers / "release").touch()
    with worker_process(config, tmp_path / "worker2.log"):
        wait_until(lambda: slow_runtime.outbox.relay() or event_row(slow_runtime).status == "processed", timeout=60,
                   what="the relay to re-enqueue the orphaned event")
        wait_until(lambda: event_row(slow_runtime).status == "processed", timeout=60, what="the second worker")
    event = event_row(slow_runtime)
    assert event.attempts == 2
    assert len(event.result["records"]) == 1


@pytest.mark.parametrize("broker_server", ["rabbitmq"], indirect=True)
def test_rabbitmq_hands_a_killed_workers_message_back_without_the_relay(slow_runtime, tmp_path):
    """acks_late + reject_on_worker_lost: the message was never acknowledged, so RabbitMQ requeues it the moment the
    worker's connection drops (Redis keeps it out of sight for the visibility timeout, and the relay steps in)."""
    start_and_kill_a_worker_mid_task(slow_runtime, tmp_path)

    wait_until(lambda: queued_messages(slow_runtime) == 1, what="RabbitMQ to requeue the unacknowledged message")


@pytest.mark.parametrize("broker_server", ["rabbitmq"], indirect=True)
def test_a_worker_consumes_again_after_rabbitmq_closed_its_connection(server_runtime, tmp_path):
    client = make_client(server_runtime)
    with worker_process(write_config(server_runtime, tmp_path / "worker.toml"), tmp_path / "worker.log"):
        client.post("/hooks/generic-main", data=b'{"email": "n1@example.com"}', headers=HEADERS)
        wait_until(lambda: event_row(server_runtime, 1).status == "processed", what="the first event")
        close_rabbitmq_connections(server_runtime.settings.broker_url)

        client.post("/hooks/generic-main", data=b'{"email": "n2@example.com"}', headers=HEADERS)
        wait_until(lambda: event_row(server_runtime, 2).status == "processed", what="an event after the reconnect")


PRELOAD_PROBE = """
import json, sys
from celery.signals import worker_init
from ingest.runtime import Runtime
from ingest.settings import load_settings

app = Runtime(load_settings()).celery
modules = ("httpcore", "crm_sync.delivery.drain", "ingest.providers.jivo", "crm_sync.destinations.hubspot")
before = [name for name in modules if name in sys.modules]
class StartingWorker:  # what Celery sends the signal with: the WorkController, which knows its app
    pass

worker = StartingWorker()
worker.app = app
worker_init.send(sender=worker)
print(json.dumps({"before": before, "after": [name for name in modules if name in sys.modules]}))
"""


def test_the_worker_imports_its_delivery_modules_before_its_pool_forks(tmp_path):
    config = tmp_path / "crm-ingest.toml"
    config.write_text(f"""
database_url = "sqlite:///{tmp_path}/store.db"
data_dir = "{tmp_path}/var"
[sources.jivo-main]
provider = "jivo"
url_secret = "s3cret-path-part"
[destinations.hubspot-main]
kind = "hubspot"
token = "pat-test"
""")
    probe = subprocess.run([sys.executable, "-c", PRELOAD_PROBE], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "CRM_INGEST_CONFIG": str(config)}, check=True)

    imported = json.loads(probe.stdout.strip().splitlines()[-1])

    assert imported["before"] == ["ingest.providers.jivo", "crm_sync.destinations.hubspot"]  # the settings check
    assert imported["after"] == ["httpcore", "crm_sync.delivery.drain", "ingest.providers.jivo",
                                 "crm_sync.destinations.hubspot"]
