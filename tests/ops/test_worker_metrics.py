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

from ingest.metrics_files import ENV
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
