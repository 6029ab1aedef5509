"""The contract's status table for /hooks/<source>, row by row, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from crm_sync.pipeline import process_event
from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import GENERIC_TOKEN, make_client
from tests.support.kept import backend_of_next_write

URL_SECRET = "url-secret-for-tests-0123456789"


def count_events(runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count(Event.id)))


def only_event(runtime) -> Event:
    with runtime.sessions() as session:
        return session.scalars(select(Event)).one()


def test_accepted_request_is_stored_and_answered_200(client, runtime, generic_headers):
    response = client.post("/hooks/generic-main", data=b'{"email": "a@example.com"}', headers=generic_headers)
    assert response.status_code == 200
    assert response.json == {"ok": True}
    assert only_event(runtime).status == "received"


def test_redelivery_is_answered_200_and_counted_on_the_first_event(client, runtime, generic_headers):
    headers = {**generic_headers, "Idempotency-Key": "delivery-1"}
    for _ in range(3):
        assert client.post("/hooks/generic-main", data=b'{"a": 1}', headers=headers).status_code == 200
    event = only_event(runtime)
    assert event.duplicate_count == 2
    assert event.last_duplicate_at is not None


def test_a_new_body_without_delivery_id_is_a_new_event(client, runtime, generic_headers):
    client.post("/hooks/generic-main", data=b'{"n": 1}', headers=generic_headers)
    client.post("/hooks/generic-main", data=b'{"n": 2}', headers=generic_headers)
    assert count_events(runtime) == 2


def test_unknown_source_is_404_json_and_not_stored(client, runtime, generic_headers):
    response = client.post("/hooks/nobody", data=b"{}", headers=generic_headers)
    assert response.status_code == 404
    assert response.json["error"] == "unknown_source"
    assert response.json["message"]
    assert count_events(runtime) == 0


def test_wrong_url_secret_is_404_like_an_unknown_source(client, runtime):
    response = client.post("/hooks/generic-secret-url/wrong-secret-0123456789", data=b"{}")
    assert response.status_code == 404
    assert response.json["error"] == "unknown_source"
    assert count_events(runtime) == 0


def test_missing_url_secret_is_404(client, runtime):
    assert client.post("/hooks/generic-secret-url", data=b"{}").status_code == 404
    assert count_events(runtime) == 0


def test_a_url_secret_on_a_source_without_one_is_404(client, generic_headers):
    response = client.post(f"/hooks/generic-main/{URL_SECRET}", data=b"{}", headers=generic_headers)
    assert response.status_code == 404


def test_right_url_secret_is_accepted(client, runtime):
    response = client.post(f"/hooks/generic-secret-url/{URL_SECRET}", data=b'{"x": 1}',
                           content_type="application/json")
    assert response.status_code == 200
    assert count_events(runtime) == 1


def test_failed_authentication_is_401_not_stored_and_counted(client, runtime):
    before = _metric("crm_ingest_webhook_requests_total", source="generic-main", outcome="401")
    response = client.post("/hooks/generic-main", data=b"{}", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.json["error"] == "authentication_failed"
    assert count_events(runtime) == 0
    assert _metric("crm_ingest_webhook_requests_total", source="generic-main", outcome="401") == before + 1


@pytest.mark.parametrize("authorization", [f"bearer {GENERIC_TOKEN}", f"BEARER  {GENERIC_TOKEN}", GENERIC_TOKEN])
def test_the_bearer_scheme_is_read_in_any_case_and_a_bare_token_is_accepted(client, runtime, authorization):
    response = client.post("/hooks/generic-main", data=b"{}", headers={"Authorization": authorization})
    assert response.status_code == 200


def test_a_token_under_another_scheme_is_401(client, runtime):
    response = client.post("/hooks/generic-main", data=b"{}", headers={"Authorization": f"Basic {GENERIC_TOKEN}"})
    assert response.status_code == 401


def test_missing_credentials_are_401(client, runtime):
    assert client.post("/hooks/generic-main", data=b"{}").status_code == 401
    assert count_events(runtime) == 0


def test_body_over_the_limit_is_413_and_not_stored(database_url, make_settings, generic_headers):
    runtime = Runtime(make_settings(database_url, max_body_bytes=1024))
    client = make_client(runtime)
    response = client.post("/hooks/generic-main", data=b"x" * 1025, headers=generic_headers)
    assert response.status_code == 413
    assert response.json["error"] == "body_too_large"
    assert count_events(runtime) == 0
    assert client.post("/hooks/generic-main", data=b"x" * 1024, headers=generic_headers).status_code == 200
    runtime.close()


def test_a_body_over_the_limit_is_counted_as_413(database_url, make_settings, generic_headers):
    runtime = Runtime(make_settings(database_url, max_body_bytes=1024))
    before = _metric("crm_ingest_webhook_requests_total", source="generic-main", outcome="413")
    make_client(runtime).post("/hooks/generic-main", data=b"x" * 1025, headers=generic_headers)
    runtime.close()
    assert _metric("crm_ingest_webhook_requests_total", source="generic-main", outcome="413") == before + 1


def test_unparseable_authenticated_request_is_stored_answered_200_and_goes_dead(client, runtime, generic_headers):
    response = client.post("/hooks/generic-main", data=b"{not json", headers=generic_headers)
    assert response.status_code == 200
    event = only_event(runtime)
    assert process_event(runtime.sessions, event.id) == "dead"
    event = only_event(runtime)
    assert (event.status, event.error_class) == ("dead", "parse_error")
    assert "not valid JSON" in event.error_message


def test_database_unavailable_is_503_with_retry_after(make_settings, generic_headers):
    runtime = Runtime(make_settings("postgresql+psycopg://127.0.0.1:1/none"))
    response = make_client(runtime).post("/hooks/generic-main", data=b"{}", headers=generic_headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert response.json["error"] == "database_unavailable"
    runtime.close()


def test_a_connection_the_database_dropped_costs_one_503_and_is_replaced(production_runtime, generic_headers):
    """The INSERT's kept connection (ingest.kept_connections) breaks as a PostgreSQL restart breaks it."""
    client = make_client(production_runtime)
    assert client.post("/hooks/generic-main", data=b'{"n": 1}', headers=generic_headers).status_code == 200
    backend = backend_of_next_write(production_runtime.engine)  # requests one at a time: they share one connection
    admin = create_engine(production_runtime.settings.database_url, poolclass=NullPool)
    with admin.connect() as connection:  # what a PostgreSQL restart does to a pooled connection
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    admin.dispose()
    statuses = [client.post("/hooks/generic-main", data=f'{{"n": {n}}}'.encode(), headers=generic_headers).status_code
                for n in range(2, 5)]
    assert statuses == [503, 200, 200]
    assert count_events(production_runtime) == 3


def test_a_method_the_provider_does_not_use_is_405_json(client, generic_headers):
    response = client.put("/hooks/generic-main", data=b"{}", headers=generic_headers)
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_a_405_names_the_methods_the_provider_uses_and_is_counted(client, generic_headers, method):
    before = _metric("crm_ingest_webhook_requests_total", source="generic-main", outcome="405")
    response = client.open("/hooks/generic-main", method=method, headers=generic_headers)
    assert (response.status_code, response.headers.get("Allow")) == (405, "GET, POST")
    assert _metric("crm_ingest_webhook_requests_total", source="generic-main", outcome="405") == before + 1


@pytest.mark.parametrize("method", ["OPTIONS", "HEAD"])
def test_options_and_head_on_a_source_are_405_json_naming_the_methods_it_uses(client, generic_headers, method):
    response = client.open("/hooks/generic-main", method=method, headers=generic_headers)
    assert (response.status_code, response.headers.get("Allow")) == (405, "GET, POST")
    if method == "OPTIONS":  # a HEAD answer has no body to read
        assert response.json["error"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/hooks/no-such-source", "/hooks/no-such-source/some-secret"])
def test_options_on_an_unknown_source_is_404_like_any_other_method(client, path):
    response = client.options(path)
    assert response.status_code == 404
    assert response.json["error"] == "unknown_source"


def test_a_405_of_the_admin_api_names_the_methods_its_route_takes(client, admin_headers):
    response = client.delete("/api/events", headers=admin_headers)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}
    assert response.json["error"] == "method_not_allowed"


def test_every_error_body_is_json_with_code_and_message(client):
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert set(response.json) == {"error", "message"}


def _metric(name: str, **labels) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
