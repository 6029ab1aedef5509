"""A body sent without a Content-Length (chunked transfer encoding) is held to max_body_bytes as strictly as one that
declares its length, through the gunicorn settings of `crm-ingest web`: werkzeug reads such a body only up to the
limit and stops there silently, which once stored a truncated body and answered 200."""
from __future__ import annotations

import json
import socket

import pytest
from sqlalchemy import create_engine, text

from bench.servers import Server
from ingest.db import migrate

LIMIT = 100
TOKEN = "chunked-test-token-0123456789"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunked")
    database_url = f"sqlite:///{folder / 'crm-ingest.db'}"
    config = folder / "crm-ingest.toml"
    config.write_text("\n".join([
        f"database_url = {json.dumps(database_url)}", 'broker_url = "filesystem://"',
        f"data_dir = {json.dumps(str(folder / 'var'))}", f"max_body_bytes = {LIMIT}",
        '[sources.generic-main]', 'provider = "generic"', f"token = {json.dumps(TOKEN)}"]) + "\n")
    migrate(database_url)
    server = Server("chunked", "ingest.app:create_app", 1, 2, folder, env={"CRM_INGEST_CONFIG": str(config)},
                    cpu_affinity=False)
    try:
        server.wait_ready("/healthz")
        yield server, database_url
    finally:
        server.stop()


def post_chunked(server: Server, chunks: list[bytes]) -> tuple[int, dict]:
    head = (b"POST /hooks/generic-main HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + body)
        answer = b""
        while part := connection.recv(65536):
            answer += part
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def stored_bodies(database_url: str) -> list[bytes]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [bytes(row[0]) for row in connection.execute(text("SELECT body FROM events ORDER BY id"))]
    finally:
        engine.dispose()


def json_of_length(length: int, marker: str) -> bytes:
    skeleton = json.dumps({"id": marker, "pad": ""}).encode()
    return json.dumps({"id": marker, "pad": "x" * (length - len(skeleton))}).encode()


def test_a_chunked_body_over_the_limit_is_refused_with_413_and_not_stored(served):
    server, database_url = served
    body = json_of_length(LIMIT + 40, "too-long")
    status, error = post_chunked(server, [body[:60], body[60:]])
    assert (status, error["error"]) == (413, "body_too_large")
    assert not any(b"too-long" in stored for stored in stored_bodies(database_url))


def test_a_chunked_body_of_exactly_the_limit_is_stored_byte_exact(served):
    server, database_url = served
    body = json_of_length(LIMIT, "exactly")
    assert post_chunked(server, [body[:30], body[30:]])[0] == 200
    assert body in stored_bodies(database_url)


def test_a_short_chunked_body_in_several_chunks_is_stored_byte_exact(served):
    server, database_url = served
    body = json_of_length(60, "short")
    assert post_chunked(server, [body[:10], body[10:20], body[20:]])[0] == 200
    assert body in stored_bodies(database_url)
