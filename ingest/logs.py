"""Logging for every crm-ingest process: one JSON object per line (or readable text for `dev`).

Each line carries time, level, logger and message, plus the context of the work it belongs to (event_id, source,
provider, delivery_id, destination, outcome, duration_ms…): passed as `extra=` or bound for a block of work with
`log_context(...)`, so that every line logged inside it (also by libraries) names the event. Emails, phone numbers and
message text are masked in every line unless `log_redaction = false`.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from datetime import time as dt_time
from enum import Enum
from typing import Iterator, Literal

from ingest.redaction import redact, redact_value

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[str, ...] = ("json", "text")
# Context fields, in the order the text format shows them.
CONTEXT_FIELDS = ("event_id", "source", "provider", "delivery_id", "destination", "interaction_id", "attempt",
                  "queue", "status", "outcome", "reason", "duration_ms")
# httpx logs every request's full URL at INFO: Bitrix24's carries its webhook secret in the path.
QUIET_LOGGERS = ("httpx", "httpcore")
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Set in a request's WSGI environ once the app has logged the request's one line itself (a webhook that stored an
# event): gunicorn's access line would only repeat it.
REQUEST_LOGGED = "crm_ingest.request_logged"
# Anywhere in the path, not only at its start: `/x/../hooks/<source>/<secret>` carries a secret too.
_URL_SECRET = re.compile(r"(/hooks/[^/]+)/[^/]+")
_SLASHES = re.compile(r"//+")
# A request target inside free text (gunicorn's error lines quote the request line of a request it refuses, and the
# URI of one that failed): its URL secret and its query string (Roistat's token) go, as from a request's path field.
_TARGET_IN_TEXT = re.compile(r"(?P<source>/hooks/+[^/\s'\"?#]+)/+[^/\s'\"?#]+|(?<=[^\s'\"?])\?[^\s'\"#]+")
# A request's own strings (path, User-Agent…) are cut to this many characters, marked with CUT: a sender chooses
# them, and every line goes through the redaction's patterns.
MAX_REQUEST_FIELD_CHARS = 256
CUT = "…"
_NOTHING_TO_REDACT = frozenset({int, float, bool, type(None)})
_context: ContextVar[dict[str, object]] = ContextVar("crm_ingest_log_context", default={})


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every line logged inside the block carries these fields (None values are left out)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: object) -> None:
    """Add fields to the current `log_context` block (learned part-way, e.g. the provider once the event is read)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def loggable_path(path: str) -> str:
    """The path, cut, without a source's URL secret (`/hooks/<source>/<url_secret>`); the query string is never
    logged (Roistat sends its credential as `token=`)."""
    path = _cut(path or "")
    if "//" in path:  # `//hooks/<source>/<secret>` routes to the same source: its secret must not slip past
        path = _SLASHES.sub("/", path)
    return _URL_SECRET.sub(r"\1/<url_secret>", path)


def without_request_secrets(text: str) -> str:
    """Free text with every request target's URL secret and query string masked."""
    if "/hooks/" not in text and "?" not in text:
        return text
    return _TARGET_IN_TEXT.sub(lambda match: f"{match['source']}/<url_secret>" if match["source"] else "?<query>",
                               text)


def request_fields(environ: dict, status: int, duration_ms: float) -> dict[str, object]:
    """What a request's line says about the HTTP exchange, for the access line and for `event stored` alike."""
    return {"http_method": _cut(environ.get("REQUEST_METHOD", "-")),
            "path": loggable_path(environ.get("PATH_INFO", "")), "http_status": status, "duration_ms": duration_ms,
            "remote_addr": _cut(environ.get("REMOTE_ADDR") or "-"),
            "user_agent": _cut(environ.get("HTTP_USER_AGENT", "-"))}


def _cut(value: str) -> str:
    return value if len(value) <= MAX_REQUEST_FIELD_CHARS else value[:MAX_REQUEST_FIELD_CHARS] + CUT


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class RedactionFilter(logging.Filter):
    """Masks personal data in the message, the extra fields and the exception text of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        fields = record.__dict__
        for key in fields.keys() - _STANDARD_ATTRIBUTES:
            if fields[key].__class__ not in _NOTHING_TO_REDACT:
                fields[key] = redact_value(key, fields[key])
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonLineFormatter(logging.Formatter):
    """{"time", "level", "logger", "message", "exception", "stack", context fields…}: one object per line.

    Written out here rather than with python-json-logger: a web request logs on its hot path, and that library's
    general field mapping cost twice as much per line as this one dict and one encode.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _iso_time(record.created), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and key[:1] != "_":
                line[key] = value
        return _JSON.encode(line)


def _json_value(value: object) -> object:
    """What a field that JSON has no type for is written as: times in ISO 8601, enums as their value, else str()."""
    if isinstance(value, (datetime, date, dt_time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_JSON = json.JSONEncoder(ensure_ascii=False, default=_json_value)


class TextFormatter(logging.Formatter):
    """`2024-05-01T10:11:12.345Z INFO crm_sync.pipeline: event processed [event_id=12 source=jivo-main …]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_time(record.created)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{key}={record.__dict__[key]}" for key in CONTEXT_FIELDS if key in record.__dict__]
        fields += [f"{key}={value}" for key, value in record.__dict__.items()
                   if key not in _STANDARD_ATTRIBUTES and key not in CONTEXT_FIELDS and not key.startswith("_")]
        if not fields:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{' '.join(fields)}]{newline}{rest}"


def _iso_time(created: float) -> str:
    """`2024-05-01T10:11:12.345Z`; the part up to the second is made once per second."""
    global _iso_second
    second, seconds_text = _iso_second  # one read: another thread may replace it meanwhile
    if second != int(created):
        second = int(created)
        seconds_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _iso_second = (second, seconds_text)
    return f"{seconds_text}.{int((created - second) * 1000):03d}Z"


_iso_second: tuple[int, str] = (-1, "")


def make_handler(log_format: LogFormat, redaction: bool, stream=None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    if redaction:
        handler.addFilter(RedactionFilter())
    handler._crm_ingest = True  # type: ignore[attr-defined]
    return handler


def configure_logging(log_format: LogFormat = "json", redaction: bool = True, level: str | int = "INFO",
                      stream=None) -> None:
    """The root logger writes every line through one handler of ours (replacing an earlier one of ours)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_crm_ingest", False)]:
        root.removeHandler(handler)
    root.addHandler(make_handler(log_format, redaction, stream))
    # Neither format shows where a line was logged from; without this every line walks the stack to find out
    # (the logging documentation's own advice, under Optimization).
    logging._srcfile = None
    # Nor the thread or process (names and ids), which LogRecord otherwise looks up for every line.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def resolve_log_format(option: str | None, configured: str | None, default: LogFormat) -> LogFormat:
    """The command line wins over the settings' `log_format`, which wins over the command's own default."""
    return (option or configured or default)  # type: ignore[return-value]
