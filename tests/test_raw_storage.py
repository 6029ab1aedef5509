"""Raw requests are stored byte-exact, with credentials left out, and deduplicated race-free."""
from __future__ import annotations

import threading
from urllib.parse import quote

import pytest
from flask import Flask, request
from sqlalchemy import select

import ingest.hooks as hooks_module
from ingest.hooks import _headers
from ingest.providers.base import RawRequest, stable_hash
from ingest.providers.generic import GenericJSONProvider
from ingest.schema import Event
from tests.conftest import make_client


def stored(runtime) -> list[Event]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Event).order_by(Event.id)))


@pytest.mark.parametrize("body", [
    bytes(range(256)),                                   # binary, every byte value
    "Привет, мир! — «ёлка»".encode("cp1251"),            # non-UTF-8 text
    b"",                                                 # empty
    b'{"name": "\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd"}\n  ',  # UTF-8 JSON with trailing whitespace
], ids=["binary", "cp1251", "empty", "utf8-json"])
def test_body_is_stored_byte_exact(client, runtime, generic_headers, body):
    assert client.post("/hooks/generic-main", data=body, headers=generic_headers).status_code == 200
    assert stored(runtime)[0].body == body


def test_form_encoded_body_is_stored_as_sent_not_as_parsed(client, runtime, generic_headers):
    body = f"name={quote('Иван Петров')}&phone=%2B7+916+123-45-67&a=1&a=2".encode()
    headers = {**generic_headers, "Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/hooks/generic-main", data=body, headers=headers).status_code == 200
    event = stored(runtime)[0]
    assert event.body == body
    assert event.content_type == "application/x-www-form-urlencoded"


def test_method_path_query_and_headers_are_stored(client, runtime, generic_headers):
    query = "user=roistat&title=%D0%97%D0%B2%D0%BE%D0%BD%D0%BE%D0%BA+%D0%BE%D1%82&x="
    headers = {**generic_headers, "X-Request-Trace": "trace-1"}
    client.get(f"/hooks/generic-main?{query}", headers=headers)
    event = stored(runtime)[0]
    assert (event.method, event.path, event.query_string) == ("GET", "/hooks/generic-main", query)
    assert event.headers["X-Request-Trace"] == "trace-1"


def test_credential_headers_are_never_stored(client, runtime):
    headers = {"X-Webhook-Token": "generic-token-for-tests-0123456789", "Cookie": "session=1",
               "Content-Type": "application/json"}
    client.post("/hooks/generic-main", data=b"{}", headers=headers)
    names = {name.lower() for name in stored(runtime)[0].headers}
    assert "x-webhook-token" not in names and "cookie" not in names and "authorization" not in names


def test_fifty_concurrent_identical_deliveries_store_exactly_one_event(runtime, generic_headers):
    """Each thread has its own client and database connection; the unique index decides, not luck."""
    body = b'{"email": "race@example.com"}'
    start = threading.Barrier(50)
    statuses: list[int] = []

    def deliver(client):
        start.wait()
        statuses.append(client.post("/hooks/generic-main", data=body, headers=generic_headers).status_code)

    clients = [make_client(runtime) for _ in range(50)]  # building Flask apps in 50 threads at once trips CPython 3.11
    threads = [threading.Thread(target=deliver, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 50
    events = stored(runtime)
    assert len(events) == 1
    assert events[0].duplicate_count == 49


def test_a_delivery_id_longer_than_the_column_is_stored_as_its_hash_and_still_deduplicates(client, runtime,
                                                                                           generic_headers):
    headers = {**generic_headers, "Idempotency-Key": "k" * 300}
    assert [client.post("/hooks/generic-main", data=b"{}", headers=headers).status_code for _ in range(2)] == [200, 200]
    [event] = stored(runtime)
    assert event.dedup_key.startswith("sha256:") and event.duplicate_count == 1


@pytest.mark.parametrize("key", ["id:76\x0036", "id:room-\ud800"], ids=["nul", "lone-surrogate"])
def test_a_dedup_key_that_is_not_storable_text_is_stored_as_its_hash(key):
    class KeyedProvider(GenericJSONProvider):
        def dedup_key(self, request: RawRequest) -> str:
            return key

    stored_key = hooks_module._dedup_key(KeyedProvider(), RawRequest("POST", "/hooks/x", "", {}, b"{}"))
    assert stored_key == f"sha256:{stable_hash(key)}"


def test_the_url_secret_is_never_stored(client, runtime):
    secret = "url-secret-for-tests-0123456789"
    client.post(f"/hooks/generic-secret-url/{secret}", data=b"{}", content_type="application/json")
    event = stored(runtime)[0]
    assert event.path == "/hooks/generic-secret-url/<url_secret>"
    assert secret not in repr(event.headers)



def test_stored_header_names_are_written_as_werkzeug_writes_them(client, runtime, generic_headers):
    headers = {**generic_headers, "x-multi-part-name": "a", "Content-Type": "text/plain"}
    client.post("/hooks/generic-main", data=b"body", headers=headers)
    stored_headers = stored(runtime)[0].headers
    assert stored_headers["X-Multi-Part-Name"] == "a"
    assert (stored_headers["Content-Type"], stored_headers["Content-Length"]) == ("text/plain", "4")


@pytest.mark.parametrize("content_type", ["", "application/json; charset=utf-8"])
def test_the_headers_read_from_the_environ_equal_werkzeugs_request_headers(content_type):
    headers = {"X-One": "1", "x-two-parts": "2", "Idempotency-Key": "key-1", "Accept-Encoding": "gzip"}
    with Flask(__name__).test_request_context("/hooks/x", method="POST", headers=headers, data=b"{}",
                                              content_type=content_type):
        assert _headers(request.environ) == dict(request.headers)


def test_header_names_past_the_cache_limit_are_read_all_the_same(monkeypatch):
    monkeypatch.setattr(hooks_module, "_HEADER_NAMES", {})
    monkeypatch.setattr(hooks_module, "MAX_CACHED_HEADER_NAMES", 2)
    headers = {f"X-Invented-{number}": str(number) for number in range(5)}
    with Flask(__name__).test_request_context("/hooks/x", method="POST", headers=headers):
        assert _headers(request.environ) == dict(request.headers)
    assert len(hooks_module._HEADER_NAMES) == 2


def test_a_content_type_of_any_length_is_stored_in_full(client, runtime, generic_headers):
    content_type = "application/json; profile=" + "p" * 400
    response = client.post("/hooks/generic-main", data=b"{}", headers={**generic_headers, "Content-Type": content_type})
    assert response.status_code == 200
    assert stored(runtime)[0].content_type == content_type
