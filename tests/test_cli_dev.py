"""`crm-ingest dev` as a new user meets it: a busy port, the admin token, a wildcard bind, a child that dies, Ctrl-C,
a readable log."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.servers import children_of
from ingest.db import migrate
from tests.support.waiting import wait_until

ADMIN_TOKEN = "dev-admin-token-0123456789"
GENERIC_TOKEN = "dev-generic-token-0123456789"
CONFIG = (f'admin_token = "{ADMIN_TOKEN}"\n'
          # Beat sends the maintenance tasks many times while the test waits for its event.
          'relay_interval_seconds = 0.2\ndelivery_sweep_interval_seconds = 0.2\n'
          f'[sources.g]\nprovider = "generic"\ntoken = "{GENERIC_TOKEN}"\n')


class Dev:
    """A `crm-ingest dev` process in a group of its own (as a terminal's foreground job), its output collected."""

    def __init__(self, workdir: Path, port: int, *options: str):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", "CRM_INGEST_CONFIG")}
        self.process = subprocess.Popen([sys.executable, "-m", "workers.cli", "dev", "--port", str(port), *options],
                                        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def printed(self, words: str) -> str | None:
        return next((line for line in list(self.lines) if words in line), None)

    def ctrl_c(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)

    def stop(self) -> str:
        """Ctrl-C, then everything it printed."""
        self.ctrl_c()
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return "\n".join(self.lines)


@pytest.fixture
def workdir(tmp_path) -> Path:
    (tmp_path / "crm-ingest.toml").write_text(CONFIG)
    return tmp_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def test_dev_on_a_port_in_use_says_so_and_starts_nothing(workdir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dev = Dev(workdir, port)
        dev.process.wait(timeout=60)
        output = dev.stop()
    assert dev.process.returncode == 1
    assert output == f"port {port} is in use: choose another with --port"


@pytest.mark.timeout(120)
def test_dev_prints_a_curl_line_with_the_admin_token(workdir):
    dev = Dev(workdir, free_port())
    try:
        line = wait_until(lambda: dev.printed("admin API:"), timeout=60, what="the admin API line")
    finally:
        dev.stop()
    assert f"curl -H 'Authorization: Bearer {ADMIN_TOKEN}' http://127.0.0.1:" in line


@pytest.mark.timeout(120)
def test_dev_bound_to_every_interface_prints_urls_that_reach_it(workdir):
    port = free_port()
    dev = Dev(workdir, port, "--host", "0.0.0.0")
    try:
        line = wait_until(lambda: dev.printed("g (generic):"), timeout=60, what="the generic source's line")
        url = line.split("POST JSON to ")[1].split(" ")[0]
        wait_until(lambda: _accepts_connections(port), timeout=60, what="the web process to listen")
        status = _post_json(url, {"email": "dev@example.com"}, GENERIC_TOKEN)
    finally:
        dev.stop()
    assert url == f"http://127.0.0.1:{port}/hooks/g"
    assert 200 <= status < 300


@pytest.mark.timeout(120)
def test_dev_says_which_process_was_killed_and_exits_128_plus_the_signal(workdir):
    dev = Dev(workdir, free_port())
    try:
        beat = wait_until(lambda: _child_running(dev, "beat"), timeout=60, what="the beat process")
        os.kill(beat, signal.SIGKILL)
        dev.process.wait(timeout=60)
    finally:
        output = dev.stop()
    assert "beat was killed by signal 9 (SIGKILL)" in output
    assert dev.process.returncode == 128 + signal.SIGKILL


@pytest.mark.timeout(120)
def test_ctrl_c_says_that_stopping_has_begun_before_the_processes_stop(workdir):
    dev = Dev(workdir, free_port())
    try:
        wait_until(lambda: dev.printed("ready."), timeout=60, what="the worker to be ready")
    finally:
        lines = dev.stop().splitlines()
    stopping = lines.index("stopping web, worker and beat (the worker first finishes any task it is running)…")
    assert stopping < lines.index("worker: Warm shutdown (MainProcess)")
    assert dev.process.returncode == 0


@pytest.mark.timeout(120)
def test_a_second_ctrl_c_while_stopping_only_says_so_and_every_process_still_ends(workdir):
    dev = Dev(workdir, free_port())
    try:
        wait_until(lambda: dev.printed("ready."), timeout=60, what="the worker to be ready")
        processes = _descendants(dev.process.pid)
        dev.ctrl_c()
        wait_until(lambda: dev.printed("stopping web"), timeout=30, what="dev to start stopping")
        dev.ctrl_c()
        dev.process.wait(timeout=60)
    finally:
        output = dev.stop()
    assert "still stopping (another Ctrl-C changes nothing" in output
    assert dev.process.returncode == 0
    assert [pid for pid in processes if Path(f"/proc/{pid}").exists()] == []


@pytest.mark.timeout(120)
def test_dev_leaves_the_maintenance_tasks_info_lines_out_of_its_log(workdir):
    url = f"sqlite:///{workdir}/var/crm-ingest.db"
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as connection:  # stored but never enqueued: only the outbox relay, a maintenance task, sends it
        connection.execute(text(
            "INSERT INTO events (source, provider, dedup_key, method, path, query_string, headers, body, "
            "content_type, remote_addr, received_at, duplicate_count, status, attempts) VALUES "
            "('g', 'generic', 'k', 'POST', '/hooks/g', '', '{}', :body, "
            "'application/json', '', '2026-01-01 00:00:00', 0, 'received', 0)"),
            {"body": b'{"email": "dev@example.com"}'})  # bytes, as the ingress stores a body: SQLite keeps a BLOB
    dev = Dev(workdir, free_port())
    try:
        wait_until(lambda: _status(engine) == "processed", timeout=90, what="the relayed event to be processed")
    finally:
        output = dev.stop()
        engine.dispose()
    chatter = [line for line in output.splitlines() if "maintenance.relay_outbox" in line
               or "maintenance.schedule_deliveries" in line]
    assert [line for line in chatter if not line.strip().startswith(". ")] == []  # the worker's banner lists them
    assert "crm_sync.pipeline" in output


def _status(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(text("SELECT status FROM events")).scalar_one()


def _child_running(dev: Dev, command: str) -> int | None:
    """The pid of dev's child running `crm-ingest <command>`."""
    return next((pid for pid in children_of(dev.process.pid) if command in _cmdline(pid)), None)


def _descendants(pid: int) -> list[int]:
    children = children_of(pid)
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _post_json(url: str, body: dict, token: str) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status
