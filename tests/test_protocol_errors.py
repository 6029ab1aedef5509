"""Requests gunicorn refuses before the app sees them get the JSON error body of every other refusal
(workers.protocol_errors), through the server settings of `crm-ingest web`."""
from __future__ import annotations

import json
import socket

import pytest

from bench.hello_app import HELLO_PATH
from bench.servers import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = Server("protocol", "bench.hello_app:create_hello_app", 1, 2, tmp_path_factory.mktemp("protocol"),
                    cpu_affinity=False)
    try:
        served.wait_ready(HELLO_PATH)
        yield served
    finally:
        served.stop()


def exchange(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of the server's answer; it closes the connection after it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def request_with(header: bytes = b"", target: bytes = b"/hooks/generic-main") -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\nHost: example\r\n" + header + b"Content-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize("request_bytes, status, code, names", [
    (request_with(b"X-Signature: a\x00b\r\n"), 400, "bad_request", "X-SIGNATURE"),
    (request_with(target=b"/hooks/generic-main?a=\xff"), 400, "bad_request", "request line"),
    (request_with(target=b"/hooks/" + b"a" * 9000), 414, "uri_too_long", "line"),
    (request_with(b"".join(b"X-H%d: 1\r\n" % n for n in range(200))), 431, "header_fields_too_large", "headers"),
], ids=["control character in a header", "raw bytes in the request line", "over-long URI", "too many headers"])
def test_a_request_gunicorn_refuses_is_answered_in_json(server, request_bytes, status, code, names):
    answered, headers, body = exchange(server, request_bytes)

    assert (answered, headers["content-type"]) == (status, "application/json")
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)
    assert error["error"] == code
    assert names.lower() in error["message"].lower()


def test_the_server_still_answers_well_formed_requests_after_refusing_one(server):
    exchange(server, request_with(b"X-Signature: a\x00b\r\n"))
    well_formed = b"GET " + HELLO_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answered, _, _ = exchange(server, well_formed)
    assert answered == 200


def test_the_refused_request_line_is_logged_without_its_url_secret_or_query_string(server):
    exchange(server, request_with(target=b"/hooks/jivo-main/url-secret-in-a-bad-line?token=roistat-token\xff"))

    log = server.log_path.read_text(errors="replace")
    assert "/hooks/jivo-main/<url_secret>" in log
    assert "url-secret-in-a-bad-line" not in log and "roistat-token" not in log
