"""Logs of HTTP requests: a stored event is its request's one line, written after the response is sent; the access
log has a line for any other request; neither carries a credential (URL secret, query string, Roistat token).
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config
from sqlalchemy import event
from werkzeug.test import EnvironBuilder

from ingest.db import migrate
from ingest.logs import REQUEST_LOGGED, request_fields
from ingest.runtime import Runtime
from workers.gunicorn_logger import GunicornLogger
from tests.conftest import make_client
from tests.ops.conftest import GENERIC, JIVO_SECRET


def serve_once(app, environ: dict) -> None:
    """As a WSGI server does: send the body, then close the response (after-response work runs on close)."""
    response = app(environ, lambda status, headers: None)
    b"".join(response)
    response.close()


def test_a_stored_event_is_logged_once_with_the_fields_of_an_access_line(ops_client, log_lines):
    read = log_lines("json")
    environ = EnvironBuilder("/hooks/generic-main", method="POST", data=b'{"email": "a@example.com"}',
                             headers=GENERIC).get_environ()
    serve_once(ops_client.application, environ)

    stored = [line for line in read() if line["message"] == "event stored"]

    assert len(stored) == 1
    assert {key: stored[0][key] for key in ("event_id", "http_method", "path", "http_status", "outcome")} == {
        "event_id": 1, "http_method": "POST", "path": "/hooks/generic-main", "http_status": 200,
        "outcome": "accepted"}
    assert stored[0]["duration_ms"] >= 0
    assert environ[REQUEST_LOGGED] is True  # so gunicorn's access log leaves the request out


def test_a_stored_event_is_logged_after_its_response_is_sent(ops_client, log_lines):
    read = log_lines("json")
    environ = EnvironBuilder("/hooks/generic-main", method="POST", data=b'{"email": "a@example.com"}',
                             headers=GENERIC).get_environ()
    response = ops_client.application(environ, lambda status, headers: None)
    b"".join(response)
    unsent = [line for line in read() if line["message"] == "event stored"]
    response.close()

    assert unsent == [] and environ[REQUEST_LOGGED] is True
    assert [line["event_id"] for line in read() if line["message"] == "event stored"] == [1]


def access_lines_for(environ: dict, log_lines) -> list[dict]:
    read = log_lines("json")
    config = Config()
    config.set("accesslog", "-")
    response = SimpleNamespace(status="200 OK", sent=12)
    GunicornLogger(config).access(response, None, environ, timedelta(milliseconds=3))
    return [line for line in read() if line["logger"] == "gunicorn.access"]


def test_the_access_log_leaves_out_a_request_the_app_logged_itself(log_lines):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/hooks/generic-main", REQUEST_LOGGED: True}

    assert access_lines_for(environ, log_lines) == []


def test_the_access_log_has_one_line_for_any_other_request(log_lines):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/hooks/jivo-main/the-url-secret", "REMOTE_ADDR": "10.0.0.1"}

    [line] = access_lines_for(environ, log_lines)

    assert (line["message"], line["http_status"], line["duration_ms"], line["response_bytes"]) == (
        "GET /hooks/jivo-main/<url_secret> 200", 200, 3.0, 12)


def test_a_doubled_slash_does_not_carry_the_url_secret_into_the_access_log(log_lines):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": f"//hooks/jivo-main/{JIVO_SECRET}", "REMOTE_ADDR": "10.0.0.1"}

    [line] = access_lines_for(environ, log_lines)

    assert (line["message"], line["path"]) == ("POST /hooks/jivo-main/<url_secret> 200",
                                               "/hooks/jivo-main/<url_secret>")


def test_a_doubled_slash_does_not_carry_the_url_secret_into_the_apps_request_line():
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": f"/hooks//jivo-main/{JIVO_SECRET}"}

    assert request_fields(environ, 308, 1.0)["path"] == "/hooks/jivo-main/<url_secret>"


ROISTAT_PASSWORD = "roistat-password-for-tests"


def test_a_failed_store_does_not_write_the_roistat_token_into_the_log(tmp_path, make_settings, log_lines):
    """Roistat sends its credential in the query string, which is stored with the request: a statement that fails
    must name neither its parameters nor the values of the request."""
    url = f"sqlite:///{tmp_path}/locked.db"
    migrate(url)
    runtime = Runtime(make_settings(url, sources={
        "roistat-main": {"provider": "roistat", "user": "roistat", "password": ROISTAT_PASSWORD}}))
    # Another writer holds the database, and the store gives up after 0.1 s instead of the 30 s busy timeout.
    event.listen(runtime.engine, "connect", lambda connection, _: connection.execute("PRAGMA busy_timeout=100"))
    holder = sqlite3.connect(f"{tmp_path}/locked.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    token = hashlib.md5(f"roistat{ROISTAT_PASSWORD}".encode()).hexdigest()
    read = log_lines("json")
    try:
        response = make_client(runtime).post(f"/hooks/roistat-main?user=roistat&token={token}&action=lead",
                                             data={"id": "1", "name": "lead"})
    finally:
        holder.close()
        runtime.close()

    lines = read()
    assert response.status_code == 503
    assert [line["level"] for line in lines if "cannot store the request" in line["message"]] == ["ERROR"]
    assert token not in json.dumps(lines)


def test_neither_the_url_secret_nor_the_query_string_reaches_the_access_log(log_lines):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/hooks/jivo-main/very-long-url-secret",
               "QUERY_STRING": "token=roistat-token-value&user=ivan%40mail.ru", "RAW_URI": "/hooks/jivo-main/"
               "very-long-url-secret?token=roistat-token-value&user=ivan%40mail.ru"}

    [line] = access_lines_for(environ, log_lines)

    assert line["path"] == "/hooks/jivo-main/<url_secret>"
    assert "very-long-url-secret" not in json.dumps(line) and "roistat-token-value" not in json.dumps(line)


def test_crm_request_urls_are_not_logged_by_httpx(log_lines):
    read = log_lines("json")
    logging.getLogger("httpx").info('HTTP Request: POST https://x.bitrix24.ru/rest/1/secretcode/crm.contact.add')

    assert read() == []
