"""Logs: one JSON object per line, naming the event at every step, with personal data masked by default."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

from gunicorn.config import Config
from sqlalchemy import event
from werkzeug.test import EnvironBuilder

from crm_sync.pipeline import process_event, process_events
from ingest.db import migrate, transaction
from ingest.events import EventRef, mark_not_enqueued
from ingest.logs import REQUEST_LOGGED, log_context, loggable_path, request_fields
from ingest.runtime import Runtime
from ingest.schema import EventStatus
from workers.gunicorn_logger import GunicornLogger
from tests.conftest import make_client
from tests.ops.conftest import GENERIC, JIVO_SECRET, post_generic

PERSONAL = {"email": "ivan.petrov@example.com", "phone": "+7 916 123-45-67", "name": "Ivan"}


def lines_about(lines: list[dict], event_id: int) -> list[dict]:
    """The lines naming the event: by its `event_id`, or among the `event_ids` of a batch."""
    return [line for line in lines if line.get("event_id") == event_id or event_id in line.get("event_ids", [])]


def test_each_step_of_an_event_is_one_json_line_naming_the_event_and_its_source(ops_client, ops_runtime, log_lines):
    read = log_lines("json")
    post_generic(ops_client, {"email": "a@example.com"})
    process_event(ops_runtime.sessions, 1)

    steps = lines_about(read(), 1)

    assert [line["message"] for line in steps] == ["event stored", "events enqueued", "event processing",
                                                   "event processed"]
    assert [line.get("source") for line in steps] == ["generic-main"] * 4
    assert steps[1]["queue"] == "ingest"
    assert steps[-1]["provider"] == "generic" and steps[-1]["outcome"] == "processed"
    assert steps[-1]["duration_ms"] >= 0
    assert all({"time", "level", "logger", "message"} <= set(line) for line in steps)


def test_each_event_of_a_message_is_logged_with_its_own_id_and_outcome(ops_client, ops_runtime, log_lines):
    read = log_lines("json")
    post_generic(ops_client, {"email": "a@example.com"})
    post_generic(ops_client, b"not json")
    post_generic(ops_client, {"email": "c@example.com"})

    process_events(ops_runtime.sessions, [1, 2, 3])

    lines = read()
    assert [(line["message"], line["event_id"]) for line in lines if line.get("attempt")] == [
        ("event processing", 1), ("event processing", 2), ("event processing", 3)]
    assert [lines_about(lines, event_id)[-1]["outcome"] for event_id in (1, 2, 3)] == ["processed", "dead",
                                                                                        "processed"]


def test_an_event_the_relay_enqueues_is_logged_with_its_source(ops_client, ops_runtime, log_lines):
    post_generic(ops_client, {"n": 1}, source="generic-b")
    with transaction(ops_runtime.sessions) as session:
        mark_not_enqueued(session, [1])   # as if the broker had refused the publish
    read = log_lines("json")

    assert ops_runtime.outbox.relay() == 1

    enqueued = [line for line in lines_about(read(), 1) if line["message"] == "events enqueued"]
    assert [(line["source"], line["queue"]) for line in enqueued] == [("generic-b", "ingest")]


def test_a_published_batch_is_one_line_per_source_listing_its_events(ops_runtime, log_lines):
    read = log_lines("json")

    ops_runtime.outbox.publish([EventRef(1, "generic-main"), EventRef(2, "jivo-main"), EventRef(3, "generic-main")])

    assert [(line["source"], line["event_ids"]) for line in read() if line["message"] == "events enqueued"] == [
        ("generic-main", [1, 3]), ("jivo-main", [2])]


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


def test_a_dead_event_is_logged_with_its_reason(ops_client, ops_runtime, log_lines):
    read = log_lines("json")
    post_generic(ops_client, b"not json")
    process_event(ops_runtime.sessions, 1)

    last = lines_about(read(), 1)[-1]

    assert last["level"] == "WARNING"
    assert last["outcome"] == "dead" and last["reason"] == "parse_error"
    assert "not valid JSON" in last["message"]


def test_a_redelivery_is_logged_as_a_duplicate_of_the_first_event(ops_client, log_lines):
    read = log_lines("json")
    post_generic(ops_client, b'{"n": 1}')
    post_generic(ops_client, b'{"n": 1}')

    stored = [line for line in read() if line.get("source") == "generic-main" and "outcome" in line]

    assert [(line["event_id"], line["outcome"]) for line in stored] == [(1, "accepted"), (1, "duplicate")]


def test_lines_logged_inside_a_context_carry_its_fields(log_lines):
    read = log_lines("json")
    with log_context(event_id=7, source="jivo-main"):
        logging.getLogger("any.library").info("something happened")

    assert read()[-1] | {"time": None} == {"time": None, "level": "INFO", "logger": "any.library",
                                            "message": "something happened", "event_id": 7, "source": "jivo-main"}


def test_emails_phones_and_message_text_are_masked(log_lines):
    read = log_lines("json")
    logging.getLogger("t").warning("write to %s or call %s: %s", PERSONAL["email"], PERSONAL["phone"],
                                   '{"text": "my name is Ivan, call me"}', extra={"text": "hello, it is Ivan"})

    line = read()[-1]

    assert line["message"] == 'write to <email> or call <phone>: {"text": "<text>"}'
    assert line["text"] == "<text>"


def test_a_bare_phone_number_is_masked_in_a_line_with_no_other_mark(log_lines):
    read = log_lines("json")
    logging.getLogger("t").warning("caller 89161234567 left no name", extra={"caller": "8 916 123 45 67"})

    line = read()[-1]

    assert (line["message"], line["caller"]) == ("caller <phone> left no name", "<phone>")


def test_a_line_with_nothing_personal_is_written_as_it_was_logged(log_lines):
    read = log_lines("json")
    logging.getLogger("t").warning("event stored, 3 of 12 in batch 4", extra={"source": "jivo-main", "attempt": 2})

    line = read()[-1]

    assert (line["message"], line["source"], line["attempt"]) == ("event stored, 3 of 12 in batch 4", "jivo-main", 2)


def test_exception_text_is_masked_too(log_lines):
    read = log_lines("json")
    try:
        raise ValueError(f"cannot parse {PERSONAL['email']}")
    except ValueError:
        logging.getLogger("t").exception("failed")

    line = read()[-1]

    assert "ValueError: cannot parse <email>" in line["exception"]
    assert PERSONAL["email"] not in str(line)


def test_a_validation_error_does_not_echo_the_input_it_rejected(log_lines):
    from pydantic import BaseModel, ValidationError

    class Visitor(BaseModel):
        name: str

    read = log_lines("json")
    try:
        Visitor(name={"first": "Ivan", "note": "lives at Tverskaya 1"})
    except ValidationError as exc:
        logging.getLogger("t").warning("cannot parse: %s", exc)

    message = read()[-1]["message"]
    assert "input_value=<text>" in message and "Tverskaya" not in message


def test_redaction_can_be_turned_off_for_debugging(log_lines):
    read = log_lines("json", redaction=False)
    logging.getLogger("t").info("write to %s", PERSONAL["email"])

    assert read()[-1]["message"] == f"write to {PERSONAL['email']}"


def test_the_text_format_shows_the_context_after_the_message(log_lines):
    read = log_lines("text")
    with log_context(event_id=3, source="generic-main"):
        logging.getLogger("t").info("event processed", extra={"outcome": "processed", "phone": "89161234567"})

    assert read()[-1].endswith("INFO    t: event processed [event_id=3 source=generic-main outcome=processed "
                               "phone=<phone>]")


def test_neither_the_url_secret_nor_the_query_string_reaches_the_access_log():
    assert loggable_path("/hooks/jivo-main/very-long-url-secret") == "/hooks/jivo-main/<url_secret>"
    assert loggable_path("/hooks/roistat-main") == "/hooks/roistat-main"


def test_crm_request_urls_are_not_logged_by_httpx(log_lines):
    read = log_lines("json")
    logging.getLogger("httpx").info('HTTP Request: POST https://x.bitrix24.ru/rest/1/secretcode/crm.contact.add')

    assert read() == []


def test_fields_json_has_no_type_for_are_written_as_text(log_lines):
    read = log_lines("json")
    logging.getLogger("t").info("odd fields", extra={
        "received": datetime(2024, 5, 1, 10, 11, 12, tzinfo=timezone.utc), "status": EventStatus.DEAD,
        "ids": (1, 2), "path": Path("/tmp/x")})

    line = read()[-1]

    assert (line["received"], line["status"], line["ids"], line["path"]) == (
        "2024-05-01T10:11:12+00:00", "dead", [1, 2], "/tmp/x")


def test_a_line_starts_with_its_utc_time_in_milliseconds_level_logger_and_message(log_lines):
    read = log_lines("json")
    logging.getLogger("t").info("hello", extra={"source": "jivo-main"})

    line = read()[-1]

    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert abs(datetime.fromisoformat(line["time"].replace("Z", "+00:00")) - datetime.now(timezone.utc)) \
        < timedelta(minutes=1)
