"""Real Celery workers for tests: in a thread of the test process, or as a separate process that can be killed."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from celery.contrib.testing.worker import TestWorkController, start_worker

from ingest.runtime import Runtime

QUEUES = "ingest,deliver,maintenance"
STOP_CHECK_SECONDS = 0.2


class PromptlyStoppingWorker(TestWorkController):
    """Sees the stop within STOP_CHECK_SECONDS. On RabbitMQ an idle worker's event loop waits in poll() for its next
    timer, up to 10 s, and a worker in a thread gets no signal to interrupt the wait (Redis wakes it every second)."""

    def on_consumer_ready(self, consumer) -> None:
        if self.hub is not None:  # the event loop runs only on transports that have one (not the embedded broker)
            self.hub.call_repeatedly(STOP_CHECK_SECONDS, _nothing)
        super().on_consumer_ready(consumer)


def _nothing() -> None:
    pass


@contextmanager
def running_worker(runtime: Runtime, concurrency: int = 1) -> Iterator[None]:
    """A real worker consuming from the runtime's broker, in a thread of this process."""
    with start_worker(runtime.celery, pool="threads" if concurrency > 1 else "solo", concurrency=concurrency,
                      perform_ping_check=False, loglevel="WARNING", shutdown_timeout=15,
                      WorkController=PromptlyStoppingWorker):
        yield


def write_config(runtime: Runtime, path: Path) -> Path:
    """The runtime's settings as a TOML file, for processes started with CRM_INGEST_CONFIG."""
    settings = runtime.settings
    lines = [
        f"database_url = {_q(settings.database_url)}",
        f"broker_url = {_q(settings.broker_url)}",
        f"broker_key_prefix = {_q(settings.broker_key_prefix)}",
        f"data_dir = {_q(str(settings.data_dir))}",
        f"requeue_after_seconds = {settings.requeue_after_seconds}",
        f"relay_interval_seconds = {settings.relay_interval_seconds}",
        f"max_process_attempts = {settings.max_process_attempts}",
    ]
    if settings.admin_token:
        lines.append(f"admin_token = {_q(settings.admin_token.get_secret_value())}")
    for source in settings.sources.values():
        lines.append(f"[sources.{_q(source.name)}]")
        for key, value in source.model_dump(exclude={"name"}, exclude_none=True).items():
            secret = getattr(value, "get_secret_value", None)
            lines.append(f"{key} = {_q(secret() if secret else value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _q(value) -> str:
    import json

    return json.dumps(value) if isinstance(value, str) else str(value)


def start_worker_process(config_path: Path, concurrency: int = 1, extra_env: dict | None = None,
                         log_path: Path | None = None) -> subprocess.Popen:
    """`crm-ingest worker` as a child process (prefork pool), killable with SIGKILL."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
    env.update({"CRM_INGEST_CONFIG": str(config_path), **(extra_env or {})})
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", "--concurrency", str(concurrency), "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
