"""Flower, as the Procfile starts it, watches our broker: our task names, and our queues with their depth."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from ingest.db import migrate
from ingest.runtime import Runtime
from tests.conftest import make_client
from tests.ops.conftest import post_generic
from tests.ops.test_worker_metrics import free_port
from tests.support.waiting import wait_until
from tests.support.workers import running_worker, write_config


@pytest.fixture
def redis_runtime(tmp_path, make_settings, redis_broker_url):
    url = f"sqlite:///{tmp_path}/crm-ingest.db"
    migrate(url)
    runtime = Runtime(make_settings(url, redis_broker_url))
    yield runtime
    runtime.close()


def test_flower_shows_our_tasks_and_queues(redis_runtime, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env.update(CRM_INGEST_CONFIG=str(write_config(redis_runtime, tmp_path / "flower.toml")),
               FLOWER_UNAUTHENTICATED_API="true")
    with open(tmp_path / "flower.log", "wb") as log:
        flower = subprocess.Popen([sys.executable, "-m", "celery", "--app", "workers.celery_app", "flower",
                                   f"--port={port}", "--address=127.0.0.1"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base, client = f"http://127.0.0.1:{port}", make_client(redis_runtime)
    try:
        wait_until(lambda: _get(f"{base}/healthcheck") is not None, what="Flower to answer")
        for n in range(3):
            post_generic(client, f'{{"n": {n}}}'.encode())
        queues = {queue["name"]: queue["messages"] for queue in _get(f"{base}/api/queues/length")["active_queues"]}
        with running_worker(redis_runtime):
            def flower_saw_a_task():  # Flower hears worker events only once it has subscribed: post until it has
                post_generic(client, b'{"n": "more"}')
                tasks = _get(f"{base}/api/tasks") or {}
                return {task["name"] for task in tasks.values()}
            names = wait_until(flower_saw_a_task, what="Flower to see a task")
    finally:
        os.killpg(flower.pid, signal.SIGKILL)
        flower.wait(timeout=30)

    assert queues == {"ingest": 3, "deliver": 0, "maintenance": 0}
    assert names == {"ingest.process_events"}


def _get(url: str):
    try:
        response = httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else \
        response.text if response.status_code == 200 else None
