"""A client that sends part of a request and then nothing holds a request thread only as long as one read may wait
(workers.slow_clients), through the server settings of `crm-ingest web` and the real app."""
from __future__ import annotations

import json
import socket

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from bench.servers import Server
from ingest.db import migrate
from ingest.schema import Event

READ_TIMEOUT = 1.0
WAIT_FOR_THE_SERVER = 15.0   # how long a test waits on a socket before it counts the server as stuck
TOKEN = "slow-clients-generic-token-0123"
WORKERS, THREADS = 1, 2
HEADERS_BEGUN = b"POST /hooks/generic-main HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving(tmp_path_factory, THREADS)


def serving(tmp_path_factory, threads: int):
    folder = tmp_path_factory.mktemp("slow")
    database_url = f"sqlite:///{folder}/store.db"
    migrate(database_url)
    config = folder / "crm-ingest.toml"
    config.write_text(f'database_url = "{database_url}"\ndata_dir = "{folder}/var"\n'
                      f'[sources.generic-main]\nprovider = "generic"\ntoken = "{TOKEN}"\n')
    served = Server("slow", "ingest.app:create_app", WORKERS, threads, folder, env={"CRM_INGEST_CONFIG": str(config)},
                    cpu_affinity=False, read_timeout=READ_TIMEOUT)
    try:
        served.wait_ready("/healthz")
        served.database_url = database_url
        yield served
    finally:
        served.stop()


def stalled(server: Server, sent: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_FOR_THE_SERVER)
    connection.sendall(sent)
    return connection


def answer_to(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (b"": closed without an answer)."""
    answer = b""
    with connection:
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def body_request(declared: int, sent: bytes) -> bytes:
    return (HEADERS_BEGUN + f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode() + sent)


def stored_events(server: Server) -> int:
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Event))
    finally:
        engine.dispose()


def test_a_client_that_stops_in_the_middle_of_its_headers_is_disconnected_unanswered(server):
    assert answer_to(stalled(server, HEADERS_BEGUN)) == b""


def test_a_single_threaded_server_disconnects_a_client_stopped_in_its_headers_too(tmp_path_factory):
    for sync_server in serving(tmp_path_factory, threads=1):  # `crm-ingest web --threads 1`: gunicorn's sync worker
        assert answer_to(stalled(sync_server, HEADERS_BEGUN)) == b""
        assert httpx.get(f"http://127.0.0.1:{sync_server.port}/healthz", timeout=WAIT_FOR_THE_SERVER).status_code == 200


def test_threads_held_by_clients_that_stopped_are_given_back_to_other_requests(server):
    connections = [stalled(server, HEADERS_BEGUN) for _ in range(WORKERS * THREADS + 2)]

    assert [answer_to(connection) for connection in connections] == [b""] * len(connections)
    assert httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=WAIT_FOR_THE_SERVER).status_code == 200


def test_a_body_that_stops_arriving_is_answered_408_and_nothing_is_stored(server):
    before = stored_events(server)

    head, _, body = answer_to(stalled(server, body_request(100, b'{"email": '))).partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["error"] == "request_timeout"
    assert stored_events(server) == before


def test_a_body_cut_short_by_the_client_is_answered_400_incomplete_body(server):
    connection = stalled(server, body_request(100, b'{"email": '))
    connection.shutdown(socket.SHUT_WR)

    head, _, body = answer_to(connection).partition(b"\r\n\r\n")

    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["error"] == "incomplete_body"


def test_a_stalled_client_is_one_warning_line_not_a_traceback(server):
    answer_to(stalled(server, HEADERS_BEGUN))

    log = server.log_path.read_text()
    assert "a client sent part of a request, then nothing" in log
    assert "Traceback" not in log and "Socket error processing request" not in log
