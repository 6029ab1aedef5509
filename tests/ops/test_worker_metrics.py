"""Counters written by a real `crm-ingest worker` (prefork pool child) reach a `/metrics` page.

Each test runs the worker as a separate process on the embedded broker and SQLite, as `crm-ingest dev` does.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ingest.metrics_files import ENV, SampleFiles, web_sample_files
from ingest.runtime import Runtime
from tests.conftest import make_client
from tests.ops.conftest import parse_metrics, post_generic, sample, scrape
from tests.support.waiting import wait_until
from tests.support.workers import write_config

PROCESSED = ("crm_ingest_events_processed_total", {"provider": "generic", "outcome": "processed"})


@pytest.fixture
def runtime(sqlite_runtime) -> Runtime:
    return sqlite_runtime


@contextmanager
def worker_process(runtime: Runtime, tmp_path: Path, *args: str, env: dict | None = None) -> Iterator[None]:
    config = write_config(runtime, tmp_path / "worker.toml")
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", ENV)}
    environment.update({"CRM_INGEST_CONFIG": str(config), **(env or {})})
    with open(tmp_path / "worker.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker", "--concurrency", "1", *args,
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def processed_count(samples) -> float | None:
    return sample(samples, PROCESSED[0], **PROCESSED[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_worker_sharing_the_webs_multiproc_dir_shows_on_the_webs_metrics(runtime, tmp_path, monkeypatch):
    shared = tmp_path / "shared-metrics"
    shared.mkdir()
    client = make_client(runtime)
    with worker_process(runtime, tmp_path, env={ENV: str(shared)}):
        post_generic(client, b'{"email": "a@example.com"}')
        monkeypatch.setenv(ENV, str(shared))  # this test process plays the web served by gunicorn
        wait_until(lambda: processed_count(scrape(client)) == 1, what="the worker's counter on the web's page")


def test_a_worker_on_the_same_machine_is_added_up_by_the_web(runtime, tmp_path, monkeypatch):
    web_folder = runtime.settings.data_dir / "metrics-web"
    web_folder.mkdir(parents=True)
    client = make_client(runtime)
    with worker_process(runtime, tmp_path):
        post_generic(client, b'{"email": "a@example.com"}')
        monkeypatch.setenv(ENV, str(web_folder))
        wait_until(lambda: processed_count(scrape(client)) == 1, what="the worker's counter on the web's page")


def test_a_worker_with_its_own_port_serves_its_metrics_and_the_web_leaves_them_out(runtime, tmp_path, monkeypatch):
    web_folder = runtime.settings.data_dir / "metrics-web"
    web_folder.mkdir(parents=True)
    port = free_port()
    client = make_client(runtime)
    with worker_process(runtime, tmp_path, "--metrics-port", str(port)):
        post_generic(client, b'{"email": "a@example.com"}')

        def own_page():
            try:
                return parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
            except httpx.TransportError:
                return {}
        wait_until(lambda: processed_count(own_page()) == 1, what="the counter on the worker's own page")
        monkeypatch.setenv(ENV, str(web_folder))
        assert processed_count(scrape(client)) is None


# A stand-in for one `crm-ingest worker` that counts events and ends: its folder prepared as the worker command
# prepares it (which is when it finds the folders of workers that ended before it).
WORKER_STAND_IN = """
import sys
from pathlib import Path
from ingest.metrics_files import prepare_worker_folder
prepare_worker_folder(Path(sys.argv[1]))
from prometheus_client import Gauge
from crm_sync.metrics import event_finished
for _ in range(int(sys.argv[2])):
    event_finished("generic", "processed", 0.01)
Gauge("crm_ingest_test_live", "a gauge of this process", multiprocess_mode="livesum").set(1)
"""


def run_worker_to_its_end(data_dir: Path, events: int) -> None:
    environment = {k: v for k, v in os.environ.items() if k != ENV}
    subprocess.run([sys.executable, "-c", WORKER_STAND_IN, str(data_dir), str(events)], env=environment,
                   check=True, timeout=60)


def webs_page(data_dir: Path, monkeypatch) -> dict:
    monkeypatch.delenv(ENV, raising=False)
    registry = CollectorRegistry()
    registry.register(SampleFiles(lambda: web_sample_files(data_dir)))
    return parse_metrics(generate_latest(registry).decode())


def test_a_restarted_workers_counters_stay_on_the_webs_page(tmp_path, monkeypatch):
    """The page adds up every worker: losing an ended one's files made the sum go down, which Prometheus reads as a
    reset of the counter (rate() then counts everything the other workers counted once more)."""
    run_worker_to_its_end(tmp_path, 3)
    run_worker_to_its_end(tmp_path, 2)  # the restart: the first one's folder is cleared when it starts
    run_worker_to_its_end(tmp_path, 0)

    assert processed_count(webs_page(tmp_path, monkeypatch)) == 5


def test_an_ended_workers_gauges_leave_the_webs_page(tmp_path, monkeypatch):
    run_worker_to_its_end(tmp_path, 1)
    run_worker_to_its_end(tmp_path, 0)  # the restart clears the first one's folder
    run_worker_to_its_end(tmp_path, 0)

    page = webs_page(tmp_path, monkeypatch)

    assert processed_count(page) == 1
    assert sample(page, "crm_ingest_test_live") == 1, "only the last worker's gauge, whose folder stays"
