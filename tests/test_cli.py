"""The `crm-ingest` command line, run as a user runs it: a real process, a config file, a real database."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.servers import children_of
from ingest.db import migrate
from tests.support.waiting import wait_until
from tests.test_migrations import revisions

TOKEN = "cli-generic-token-0123456789"


def cli(workdir, *args, timeout=60):
    env = {**os.environ, "CRM_INGEST_CONFIG": str(workdir / "crm-ingest.toml")}
    for var in ("DATABASE_URL", "BROKER_URL", "CRM_INGEST_ADMIN_TOKEN"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "crm-ingest.toml").write_text(
        f'admin_token = "admin-0123456789"\n[sources.g]\nprovider = "generic"\ntoken = "{TOKEN}"\n')
    assert cli(tmp_path, "migrate").returncode == 0
    return tmp_path


def receive_requests(workdir, *bodies: bytes, process: bool = False) -> None:
    """Requests through the real app (in this process) into the CLI's SQLite database; with `process`, processed
    as a worker would, else left `received`, as when no worker has taken them yet."""
    from crm_sync.pipeline import process_event
    from ingest.app import create_app
    from ingest.runtime import Runtime
    from ingest.settings import load_settings

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        runtime = Runtime(load_settings(workdir / "crm-ingest.toml", env={}))
        client = create_app(runtime).test_client()
        for body in bodies:
            client.post("/hooks/g", data=body, headers={"Authorization": f"Bearer {TOKEN}"}, buffered=True)
        for event_id in range(1, len(bodies) + 1) if process else ():
            process_event(runtime.sessions, event_id)
        runtime.close()
    finally:
        os.chdir(cwd)


def store_requests(workdir, *bodies: bytes) -> None:
    """Requests through the real app into the CLI's SQLite database, processed."""
    receive_requests(workdir, *bodies, process=True)


def test_migrate_says_a_database_at_head_is_already_there(workdir):
    result = cli(workdir, "migrate")
    assert result.returncode == 0
    assert result.stdout == f"the database at sqlite:///var/crm-ingest.db is already at {revisions()[-1]}\n"


def test_migrate_says_it_upgraded_an_empty_database_from_empty_to_head(tmp_path):
    (tmp_path / "crm-ingest.toml").write_text("")
    result = cli(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"upgraded the database at sqlite:///var/crm-ingest.db from empty to {revisions()[-1]}\n"


def test_the_sqlite_store_it_creates_is_readable_by_its_own_user_only(tmp_path):
    (tmp_path / "crm-ingest.toml").write_text("")
    os.chmod(tmp_path, 0o755)  # whatever umask the test runs with

    assert cli(tmp_path, "migrate").returncode == 0

    assert _mode(tmp_path / "var") == 0o700
    assert {path.name: _mode(path) for path in (tmp_path / "var").iterdir()} == {"crm-ingest.db": 0o600}


def test_the_starter_config_is_created_readable_by_its_owner_only(tmp_path):
    from workers.starter import write_starter_config

    assert write_starter_config(tmp_path / "crm-ingest.toml")
    assert _mode(tmp_path / "crm-ingest.toml") == 0o600


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_migrate_says_which_revision_an_older_database_was_upgraded_from(tmp_path):
    (tmp_path / "crm-ingest.toml").write_text("")
    migrate(f"sqlite:///{tmp_path}/var/crm-ingest.db", revisions()[0])
    result = cli(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert f"from {revisions()[0]} to {revisions()[-1]}" in result.stdout


def test_migrate_on_a_database_newer_than_this_version_says_to_upgrade_crm_ingest(workdir):
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{workdir}/var/crm-ingest.db")
    with engine.begin() as connection:  # as a newer crm-ingest's `migrate` leaves it
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    result = cli(workdir, "migrate")
    assert result.returncode == 1
    assert result.stderr == (f"Error: the database at sqlite:///var/crm-ingest.db is at revision 9999, newer than "
                             f"this version (head {revisions()[-1]}): upgrade crm-ingest\n")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_events_list_on_a_database_never_migrated_says_to_run_migrate(kind, tmp_path, request):
    if kind == "sqlite":
        sqlite3.connect(tmp_path / "never-migrated.db").close()  # an empty database: a missing one is another case
    url = f"sqlite:///{tmp_path}/never-migrated.db" if kind == "sqlite" else request.getfixturevalue(
        "empty_postgres_schema_url")
    (tmp_path / "crm-ingest.toml").write_text(f'database_url = "{url}"\n')
    result = cli(tmp_path, "events", "list")
    assert result.returncode == 1
    assert result.stderr.endswith("has no crm-ingest schema (or is older than this version): run crm-ingest "
                                  "migrate\n")
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_events_list_shows_status_and_reason(workdir):
    store_requests(workdir, b'{"email": "a@example.com"}', b"broken")
    result = cli(workdir, "events", "list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()[1:]  # under the header
    assert "dead" in lines[0] and "parse_error" in lines[0]
    assert "processed" in lines[1]


def test_events_list_as_json_lines_filters_by_status(workdir):
    store_requests(workdir, b'{"email": "a@example.com"}', b"broken")
    rows = [json.loads(line) for line in cli(workdir, "events", "list", "--status", "dead", "--json").stdout.splitlines()]
    assert [row["id"] for row in rows] == [2]


def test_events_show_prints_the_stored_request(workdir):
    store_requests(workdir, b'{"email": "a@example.com"}')
    shown = json.loads(cli(workdir, "events", "show", "1").stdout)
    assert shown["request"]["body"] == '{"email": "a@example.com"}'
    missing = cli(workdir, "events", "show", "99")
    assert missing.returncode != 0 and "no event 99" in missing.stderr


def test_replay_dry_run_counts_and_changes_nothing(workdir):
    store_requests(workdir, b"broken 1", b"broken 2")
    result = cli(workdir, "replay", "--status", "dead", "--dry-run")
    assert "would replay 2 of 2" in result.stdout
    assert "dead" in cli(workdir, "events", "list", "--status", "dead").stdout


def test_replay_by_status_puts_events_back_in_the_queue(workdir):
    store_requests(workdir, b"broken 1", b"broken 2")
    assert "replayed 2 of 2" in cli(workdir, "replay", "--status", "dead").stdout
    assert cli(workdir, "events", "list", "--status", "dead").stdout == ""


def test_replay_needs_an_event_or_a_status(workdir):
    result = cli(workdir, "replay")
    assert result.returncode == 2
    assert "--event ID, or --status" in result.stderr


def test_sweep_enqueues_events_whose_publish_failed(workdir):
    from sqlalchemy import create_engine, text

    store_requests(workdir, b"{}")
    engine = create_engine(f"sqlite:///{workdir}/var/crm-ingest.db")
    with engine.begin() as connection:  # as the web process leaves it when the broker refused the publish
        connection.execute(text("UPDATE events SET status = 'received', enqueued_at = NULL"))
    engine.dispose()
    assert "enqueued 1 event(s)" in cli(workdir, "sweep").stdout
    assert "enqueued 0 event(s)" in cli(workdir, "sweep").stdout


@pytest.mark.timeout(120)
def test_dev_writes_a_starter_config_serves_webhooks_and_stops_everything_on_ctrl_c(tmp_path):
    port = 18765 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", "CRM_INGEST_CONFIG")}
    # In a group of its own, which gets the SIGINT, as a terminal's foreground group gets a Ctrl-C.
    process = subprocess.Popen([sys.executable, "-m", "workers.cli", "dev", "--port", str(port)], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    started: list[int] = []
    try:
        lines = []
        wait_until(lambda: lines.append(process.stdout.readline()) or "generic-main" in lines[-1], timeout=60,
                   what="the setup instructions")
        token = lines[-1].rsplit("Bearer ", 1)[1].strip()
        assert (tmp_path / "crm-ingest.toml").exists()
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(base), timeout=60, what="the web server")
        response = httpx.post(f"{base}/hooks/generic-main", content=b'{"email": "dev@example.com"}',
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        admin_token = _admin_token(tmp_path / "crm-ingest.toml")
        wait_until(lambda: _status(base, admin_token) == "processed", timeout=60, what="the worker to process it")
        started = _descendants(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    assert len(started) >= 5  # web master and worker, Celery worker and its pool, beat
    assert [pid for pid in started if _alive(pid)] == []
    with socket.socket() as listener:  # nobody listens on the port any more (as gunicorn binds: TIME_WAIT allowed)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))


def _descendants(pid: int) -> list[int]:
    children = children_of(pid)
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.timeout(90)
def test_web_counts_webhooks_on_its_metrics_page_whichever_providers_are_configured(workdir):
    """A Roistat source once made loading the settings import the metrics before the metrics folder was set, and the
    page showed no webhook counter at all."""
    config = workdir / "crm-ingest.toml"
    config.write_text(config.read_text() + '[sources.r]\nprovider = "roistat"\nuser = "roistat"\n'
                                           'password = "roistat-password-0123"\n')
    port = 19765 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", "PROMETHEUS_MULTIPROC_DIR")}
    web = subprocess.Popen([sys.executable, "-m", "workers.cli", "web", "--port", str(port), "--workers", "1",
                            "--no-cpu-affinity"], cwd=workdir, env={**env, "CRM_INGEST_CONFIG": str(config)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(base), timeout=60, what="the web server")
        for n in range(3):
            response = httpx.post(f"{base}/hooks/g", content=b'{"n": %d}' % n,
                                  headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200
        page = httpx.get(f"{base}/metrics").text
    finally:
        web.terminate()
        web.wait(timeout=30)
    assert 'crm_ingest_webhook_requests_total{outcome="accepted",provider="generic",source="g"} 3.0' in page


@pytest.mark.timeout(90)
def test_web_listens_on_an_ipv6_address(workdir):
    port = 20765 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", "PROMETHEUS_MULTIPROC_DIR")}
    web = subprocess.Popen([sys.executable, "-m", "workers.cli", "web", "--host", "::1", "--port", str(port),
                            "--workers", "1", "--no-cpu-affinity"], cwd=workdir,
                           env={**env, "CRM_INGEST_CONFIG": str(workdir / "crm-ingest.toml")},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _up(f"http://[::1]:{port}") or web.poll() is not None, timeout=60, what="the web server")
        assert web.poll() is None, "gunicorn refused the address"
    finally:
        web.terminate()
        web.wait(timeout=30)


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _status(base: str, admin_token: str) -> str | None:
    events = httpx.get(f"{base}/api/events", headers={"Authorization": f"Bearer {admin_token}"}).json()["events"]
    return events[0]["status"] if events else None


def _admin_token(path) -> str:
    import tomllib

    return tomllib.loads(path.read_text())["admin_token"]
