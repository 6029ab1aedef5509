"""Fixtures for the real services: PostgreSQL, Redis, RabbitMQ, the embedded default, and a running Celery worker.

Tests that need a server run against it for real. Outside CI a missing server skips those tests; under CI=true it
fails them, because a green run that tested nothing would hide a broken machine. Tests are marked with the broker
servers they use (`redis`, `rabbitmq`), so `-m "not rabbitmq"` leaves out what a machine cannot run.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from kombu import Connection
from sqlalchemy import create_engine, text

from ingest.app import create_app
from ingest.db import migrate
from ingest.runtime import Runtime
from ingest.settings import Settings, settings_from_dict

PG_SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The server, without a virtual host: each test process adds one of its own (rabbitmq_vhost_url).
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
# The same kind of broker where nothing listens, for a broker that is down.
DEAD_BROKER_URLS = {"redis": "redis://127.0.0.1:1/0", "rabbitmq": "amqp://guest:guest@127.0.0.1:1//"}
IN_CI = os.environ.get("CI", "").lower() == "true"
PAYLOADS = Path(__file__).parent / "payloads"
RUN_ID = uuid.uuid4().hex[:10]
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
GENERIC_TOKEN = "generic-token-for-tests-0123456789"
MAX_TEST_PROCESSES = 4
BASE_SOURCES: dict[str, dict[str, Any]] = {
    "generic-main": {"provider": "generic", "token": GENERIC_TOKEN},
    "generic-secret-url": {"provider": "generic", "url_secret": "url-secret-for-tests-0123456789"},
}


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`, capped: each test process holds its own PostgreSQL schema, connections and subprocess servers."""
    return max(1, min(os.cpu_count() or 1, MAX_TEST_PROCESSES))


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items) -> None:
    """Mark each test with the broker servers it uses, also per parameter of `broker_server`."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        parameters = getattr(getattr(item, "callspec", None), "params", {})
        for server in ("redis", "rabbitmq"):
            if f"{server}_broker_url" in fixtures or parameters.get("broker_server") == server:
                item.add_marker(server)


def require_service(name: str, host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        missing_service(f"{name} is not reachable at {host}:{port} ({exc})")


def missing_service(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; under CI=true this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


def payload(relative: str) -> bytes:
    """A sample request body from tests/payloads/."""
    return (PAYLOADS / relative).read_bytes()


# --- databases ----------------------------------------------------------------------------------------------------

@contextmanager
def private_schema(name: str) -> Iterator[str]:
    """An empty schema of this name in the `test` database, as a URL whose search_path is it; dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    admin = create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {name}"))
    try:
        yield f"{PG_SERVER_URL}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    """A private schema in the `test` database, migrated once per session, dropped afterwards."""
    with private_schema(f"t_{RUN_ID}") as url:
        migrate(url)
        yield url


@pytest.fixture
def empty_postgres_schema_url() -> Iterator[str]:
    """A fresh, empty schema of its own (the session's schema is migrated already)."""
    with private_schema(f"t_{RUN_ID}_{uuid.uuid4().hex[:8]}") as url:
        yield url


def truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = connection.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
        )).scalars().all()
        if tables:
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each test using it runs twice: on the embedded SQLite default and on PostgreSQL."""
    return _database_url(request, request.param, tmp_path)


def _database_url(request, kind: str, tmp_path: Path) -> str:
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_schema_url")
        truncate_postgres(url)
        return url
    url = f"sqlite:///{tmp_path}/crm-ingest.db"
    migrate(url)
    return url


@pytest.fixture
def redis_broker_url() -> str:
    """Redis, shared: each test's keys live under its own `broker_key_prefix` (make_settings)."""
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def rabbitmq_vhost_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this test process's own, deleted with everything in it when the session ends.

    RabbitMQ keeps deployments apart by vhost (it has no key prefix), so parallel test processes and repeated runs
    never see each other's queues. rabbitmqctl takes about a second per call: one vhost per session, not per test."""
    server = urlsplit(RABBITMQ_URL)
    require_service("RabbitMQ", server.hostname, server.port or 5672)
    if shutil.which("rabbitmqctl") is None:
        missing_service("rabbitmqctl is not installed: each test process creates a RabbitMQ vhost of its own")
    vhost = f"crm-ingest-test-{RUN_ID}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, server.username or "guest", ".*", ".*", ".*")
        yield f"{RABBITMQ_URL}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def vhost_of(broker_url: str) -> str:
    return urlsplit(broker_url).path[1:]


def close_rabbitmq_connections(broker_url: str) -> None:
    """RabbitMQ closes every connection to this URL's vhost, as a broker restart would, while the machine's server
    keeps running for every other test process."""
    rabbitmqctl("close_all_connections", "--vhost", vhost_of(broker_url), "closed by a test, as in a broker restart")


@pytest.fixture
def rabbitmq_broker_url(rabbitmq_vhost_url) -> str:
    """The session's vhost with our queues deleted, so that each test starts with nothing waiting."""
    from crm_sync.delivery.wake import DELIVER_QUEUE
    from ingest.outbox import INGEST_QUEUE, MAINTENANCE_QUEUE

    with Connection(rabbitmq_vhost_url, connect_timeout=5) as connection:
        for queue in (INGEST_QUEUE, DELIVER_QUEUE, MAINTENANCE_QUEUE):
            connection.default_channel.queue_delete(queue)
    return rabbitmq_vhost_url


@dataclass(frozen=True)
class BrokerServer:
    kind: str       # "redis" or "rabbitmq"
    url: str
    dead_url: str   # the same kind of broker at a port where nothing listens


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_server(request) -> BrokerServer:
    """Each test using it runs twice: on Redis and on RabbitMQ."""
    return BrokerServer(request.param, request.getfixturevalue(f"{request.param}_broker_url"),
                        DEAD_BROKER_URLS[request.param])


# --- settings, runtime, app ---------------------------------------------------------------------------------------

@pytest.fixture
def make_settings(tmp_path) -> Callable[..., Settings]:
    """Settings for a test: test sources, the admin token, the test's own data dir; override anything."""

    def build(database_url: str, broker_url: str = "filesystem://", sources: dict | None = None, **extra) -> Settings:
        on_redis = broker_url.startswith(("redis://", "rediss://"))  # RabbitMQ tests get a vhost instead
        raw = {
            "database_url": database_url,
            "broker_url": broker_url,
            "broker_key_prefix": f"test-{RUN_ID}-{uuid.uuid4().hex[:6]}:" if on_redis else "",
            "data_dir": str(tmp_path / "var"),
            "admin_token": ADMIN_TOKEN,
            "sources": {**BASE_SOURCES, **(sources or {})},
            **extra,
        }
        return settings_from_dict(raw, env={})

    return build


@pytest.fixture
def runtime(database_url, make_settings) -> Iterator[Runtime]:
    """The embedded broker on SQLite and PostgreSQL; see `production_runtime` for PostgreSQL + Redis."""
    rt = Runtime(make_settings(database_url))
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(tmp_path, make_settings) -> Iterator[Runtime]:
    """The embedded default only: SQLite and the embedded broker."""
    url = f"sqlite:///{tmp_path}/crm-ingest.db"
    migrate(url)
    rt = Runtime(make_settings(url))
    yield rt
    rt.close()


@pytest.fixture
def production_runtime(postgres_schema_url, redis_broker_url, make_settings) -> Iterator[Runtime]:
    truncate_postgres(postgres_schema_url)
    rt = Runtime(make_settings(postgres_schema_url, redis_broker_url))
    yield rt
    rt.close()


@pytest.fixture
def server_runtime(postgres_schema_url, broker_server, make_settings) -> Iterator[Runtime]:
    """PostgreSQL and a broker server: each test using it runs on Redis and on RabbitMQ."""
    truncate_postgres(postgres_schema_url)
    rt = Runtime(make_settings(postgres_schema_url, broker_server.url))
    yield rt
    rt.close()


class BufferedClient(FlaskClient):
    """Buffers and closes every response as a real server does, so after-response work (the publish) runs."""

    def open(self, *args, buffered: bool = True, **kwargs):
        return super().open(*args, buffered=buffered, **kwargs)


def make_client(runtime: Runtime) -> FlaskClient:
    app = create_app(runtime)
    app.test_client_class = BufferedClient
    return app.test_client()


@pytest.fixture
def client(runtime):
    return make_client(runtime)


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def generic_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {GENERIC_TOKEN}", "Content-Type": "application/json"}
