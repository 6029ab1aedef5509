"""/healthz answers without I/O; /readyz checks the database and the broker and names what fails."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.runtime import Runtime
from tests.conftest import DEAD_BROKER_URLS, make_client


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
