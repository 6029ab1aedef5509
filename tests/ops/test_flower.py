"""Flower, as the Procfile starts it, watches our broker: our task names, and our queues with their depth.

On RabbitMQ Flower reads queue lengths from the management plugin's HTTP API (`--broker-api`), which this machine's
RabbitMQ does not run: there the queues' depth is `crm_ingest_queue_depth` (tests/ops/test_state_metrics.py).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from ingest.db import migrate
from ingest.runtime import Runtime
from tests.conftest import make_client
from tests.ops.conftest import post_generic
from tests.ops.test_worker_metrics import free_port
from tests.support.waiting import wait_until
from tests.support.workers import running_worker, write_config


def sqlite_runtime_on(broker_url: str, tmp_path: Path, make_settings) -> Runtime:
    url = f"sqlite:///{tmp_path}/crm-ingest.db"
    migrate(url)
    return Runtime(make_settings(url, broker_url))


@pytest.fixture
def redis_runtime(tmp_path, make_settings, redis_broker_url):
    runtime = sqlite_runtime_on(redis_broker_url, tmp_path, make_settings)
    yield runtime
    runtime.close()


@pytest.fixture
def server_runtime(tmp_path, make_settings, broker_server):
    runtime = sqlite_runtime_on(broker_server.url, tmp_path, make_settings)
    yield runtime
    runtime.close()


@contextmanager
def running_flower(runtime: Runtime, tmp_path: Path) -> Iterator[str]:
    """Flower on the runtime's broker, as the Procfile starts it; its base URL once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env.update(CRM_INGEST_CONFIG=str(write_config(runtime, tmp_path / "flower.toml")),
               FLOWER_UNAUTHENTICATED_API="true")
    with open(tmp_path / "flower.log", "wb") as log:
        flower = subprocess.Popen([sys.executable, "-m", "celery", "--app", "workers.celery_app", "flower",
                                   f"--port={port}", "--address=127.0.0.1"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{base}/healthcheck") is not None, what="Flower to answer")
        yield base
    finally:
        os.killpg(flower.pid, signal.SIGKILL)
        flower.wait(timeout=30)


def tasks_flower_saw(runtime: Runtime, base: str) -> set[str]:
    """The task names Flower lists once a worker ran one. Flower hears worker events only once it has subscribed:
    post until it has."""
    client = make_client(runtime)
    with running_worker(runtime):
        def flower_saw_a_task():
            post_generic(client, b'{"n": "more"}')
            tasks = _get(f"{base}/api/tasks") or {}
            return {task["name"] for task in tasks.values()}
        return wait_until(flower_saw_a_task, what="Flower to see a task")


def test_flower_shows_our_tasks(server_runtime, tmp_path):
    with running_flower(server_runtime, tmp_path) as base:
        assert tasks_flower_saw(server_runtime, base) == {"ingest.process_events"}


def test_flower_shows_our_queues_with_their_depth_on_redis(redis_runtime, tmp_path):
    with running_flower(redis_runtime, tmp_path) as base:
        client = make_client(redis_runtime)
        for n in range(3):
            post_generic(client, f'{{"n": {n}}}'.encode())
        queues = {queue["name"]: queue["messages"] for queue in _get(f"{base}/api/queues/length")["active_queues"]}

    assert queues == {"ingest": 3, "deliver": 0, "maintenance": 0}


def _get(url: str):
    try:
        response = httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else \
        response.text if response.status_code == 200 else None
