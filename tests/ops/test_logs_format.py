"""The log line format: JSON starting with UTC time, level, logger and message; the fields of the log context
on every line; fields JSON has no type for written as text; and the text format.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ingest.logs import log_context
from ingest.schema import EventStatus


def test_lines_logged_inside_a_context_carry_its_fields(log_lines):
    read = log_lines("json")
    with log_context(event_id=7, source="jivo-main"):
        logging.getLogger("any.library").info("something happened")

    assert read()[-1] | {"time": None} == {"time": None, "level": "INFO", "logger": "any.library",
                                            "message": "something happened", "event_id": 7, "source": "jivo-main"}


def test_the_text_format_shows_the_context_after_the_message(log_lines):
    read = log_lines("text")
    with log_context(event_id=3, source="generic-main"):
        logging.getLogger("t").info("event processed", extra={"outcome": "processed", "phone": "89161234567"})

    assert read()[-1].endswith("INFO    t: event processed [event_id=3 source=generic-main outcome=processed "
                               "phone=<phone>]")


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
