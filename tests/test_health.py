"""/healthz answers without I/O; /readyz checks the database and the broker and names what fails."""
from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from ingest.db import alembic_config, migrate
from ingest.runtime import Runtime
from ingest.shared_reads import FRESH_SECONDS
from tests.conftest import DEAD_BROKER_URLS, PG_SERVER_URL, make_client, truncate_postgres
from tests.support.stalling_proxy import StallingProxy


def test_healthz_answers_even_when_everything_is_down(make_settings):
    runtime = Runtime(make_settings("postgresql+psycopg://127.0.0.1:1/none", "redis://127.0.0.1:1/0"))
    assert make_client(runtime).get("/healthz").status_code == 200
    runtime.close()


def test_readyz_is_ready_on_the_embedded_default(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "database": "ok", "broker": "ok"}


def test_readyz_is_ready_on_postgresql_and_a_broker_server(server_runtime):
    assert make_client(server_runtime).get("/readyz").status_code == 200


def test_readyz_names_the_database_when_it_is_down(make_settings, redis_broker_url):
    runtime = Runtime(make_settings("postgresql+psycopg://127.0.0.1:1/none", redis_broker_url))
    response = make_client(runtime).get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json["message"] and "broker" not in response.json["message"]
    runtime.close()


@pytest.mark.parametrize("dead_broker", DEAD_BROKER_URLS.values(), ids=DEAD_BROKER_URLS.keys())
def test_readyz_names_the_broker_when_it_is_down(database_url, make_settings, dead_broker):
    runtime = Runtime(make_settings(database_url, dead_broker))
    response = make_client(runtime).get("/readyz")
    assert response.status_code == 503
    assert "broker" in response.json["message"] and "database" not in response.json["message"]
    runtime.close()


def test_readyz_answers_a_database_that_stopped_answering_with_a_timeout(postgres_schema_url, make_settings):
    truncate_postgres(postgres_schema_url)
    server = urlsplit(PG_SERVER_URL)
    with StallingProxy(server.hostname, server.port) as proxy:
        runtime = Runtime(make_settings(proxy.url_for(postgres_schema_url)))
        client = make_client(runtime)
        assert client.get("/readyz").status_code == 200  # warm: the pool keeps a connection
        time.sleep(FRESH_SECONDS)  # past the window in which probes share that read (ingest.shared_reads)
        proxy.stall()
        responses: list = []
        probe = threading.Thread(target=lambda: responses.append(client.get("/readyz")), daemon=True)
        probe.start()
        probe.join(timeout=60)  # a bound on a hang, not a speed
        runtime.close()

    assert not probe.is_alive(), "/readyz still waits for a database that stopped answering"
    assert (responses[0].status_code, responses[0].json["message"]) == (503, "database: timeout")


def code_head() -> str:
    """This code's latest migration, as alembic reads it."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def readyz_on(database_url: str, make_settings):
    runtime = Runtime(make_settings(database_url))
    try:
        return make_client(runtime).get("/readyz")
    finally:
        runtime.close()


def test_readyz_is_not_ready_on_a_database_never_migrated(tmp_path, make_settings):
    response = readyz_on(f"sqlite:///{tmp_path}/empty.db", make_settings)

    assert response.status_code == 503
    assert response.json["message"] == f"database: schema at none, this version needs {code_head()}: " \
                                       "run crm-ingest migrate"


def test_readyz_is_not_ready_on_a_schema_behind_the_code(tmp_path, make_settings):
    url = f"sqlite:///{tmp_path}/behind.db"
    previous = ScriptDirectory.from_config(alembic_config(url)).get_revision(code_head()).down_revision
    migrate(url, previous)

    response = readyz_on(url, make_settings)

    assert response.status_code == 503
    assert response.json["message"] == f"database: schema at {previous}, this version needs {code_head()}: " \
                                       "run crm-ingest migrate"


def test_readyz_is_ready_on_a_schema_a_newer_version_migrated(tmp_path, make_settings):
    """A rolling deploy: the new version migrated first, and migrations add before they remove."""
    url = f"sqlite:///{tmp_path}/ahead.db"
    migrate(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'from-a-newer-version'"))
    engine.dispose()

    assert readyz_on(url, make_settings).status_code == 200


def test_metrics_are_prometheus_text(client, generic_headers):
    client.post("/hooks/generic-main", data=b"{}", headers=generic_headers)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert b'crm_ingest_webhook_requests_total{outcome="accepted",provider="generic",source="generic-main"}' \
        in response.data


def test_metrics_time_each_acknowledgement_by_provider(client, generic_headers):
    def acknowledged() -> float:
        page = client.get("/metrics").get_data(as_text=True)
        return sum(sample.value for family in text_string_to_metric_families(page) for sample in family.samples
                   if sample.name == "crm_ingest_webhook_ack_seconds_count" and sample.labels["provider"] == "generic")

    before = acknowledged()
    client.post("/hooks/generic-main", data=b"{}", headers=generic_headers)
    assert acknowledged() == before + 1


def test_metrics_show_how_many_requests_each_commit_stored(client, generic_headers):
    client.post("/hooks/generic-main", data=b"{}", headers=generic_headers)
    response = client.get("/metrics")
    assert b'crm_ingest_store_batch_events_bucket{le="1.0"}' in response.data
