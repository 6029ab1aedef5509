"""A destination's `rate` holds when real `crm-ingest worker` processes deliver, on Redis and on RabbitMQ alike: the
bucket is a row in the database that every worker takes from, never something of the broker's, so RabbitMQ needs no
Redis beside it."""
from __future__ import annotations

import os
import signal
import time

from crm_sync.schema import DeliveryStatus
from ingest.runtime import Runtime
from tests.conftest import truncate_postgres
from tests.contacts.provider_requests import PROVIDER_SOURCES, jivo_chat
from tests.delivery.conftest import Harness, write_config
from tests.delivery.test_rate_limit import VendorWindow, most_in_any_window
from tests.destinations.conftest import WEBHOOK_SECRET
from tests.fakes.webhook import WebhookReceiver
from tests.support.waiting import wait_until
from tests.support.workers import start_worker_process

CHATS = 25
LIMIT, PER_SECONDS = 20, 2.0


def all_delivered(harness: Harness) -> bool:
    harness.runtime.delivery.schedule()  # as beat does: wakes a destination whose drain ended as new work came in
    return harness.statuses() == {DeliveryStatus.SUCCEEDED: CHATS}


def test_a_burst_delivered_by_worker_processes_keeps_the_rate_and_never_draws_a_429(
        postgres_schema_url, broker_server, make_settings, tmp_path):
    truncate_postgres(postgres_schema_url)
    started = time.time()
    with WebhookReceiver().running() as receiver:
        receiver.faults = VendorWindow(count=LIMIT, per=PER_SECONDS)
        settings = make_settings(postgres_schema_url, broker_server.url, sources=PROVIDER_SOURCES, destinations={
            "audit": {"kind": "webhook", "url": f"{receiver.url}/hooks/crm", "secret": WEBHOOK_SECRET,
                      "rate": f"{LIMIT}/{PER_SECONDS:g}s", "timeout_seconds": 2}})
        harness = Harness(Runtime(settings))
        worker = start_worker_process(write_config(tmp_path / "crm-ingest.toml", settings), concurrency=2,
                                      log_path=tmp_path / "worker.log")
        try:
            harness.send(*[jivo_chat(700 + n, phone=f"+791612307{n:02d}") for n in range(CHATS)])
            wait_until(lambda: all_delivered(harness), timeout=60, interval=0.2, what="every chat delivered")
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
            harness.runtime.close()

    assert [call.status for call in receiver.calls if call.status != 200] == []
    assert most_in_any_window(receiver.faults.arrivals, PER_SECONDS) <= LIMIT
    assert harness.state("audit").tokens_at >= started, "the workers took their tokens from the database's bucket"
