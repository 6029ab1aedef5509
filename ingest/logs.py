"""Logging for every crm-ingest process: one JSON object per line (or readable text for `dev`).

Each line carries time, level, logger and message, plus the context of the work it belongs to (event_id, source,
provider, delivery_id, destination, outcome, duration_ms…): passed as `extra=` or bound for a block of work with
`log_context(...)`, so that every line logged inside it (also by libraries) names the event. Emails, phone numbers and
message text are masked in every line unless `log_redaction = false`.
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Iterator, Literal

from pythonjsonlogger.json import JsonFormatter

from ingest.redaction import redact, redact_value

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[str, ...] = ("json", "text")
# Context fields, in the order the text format shows them.
CONTEXT_FIELDS = ("event_id", "source", "provider", "delivery_id", "destination", "interaction_id", "attempt",
                  "queue", "status", "outcome", "reason", "duration_ms")
# httpx logs every request's full URL at INFO: Bitrix24's carries its webhook secret in the path.
QUIET_LOGGERS = ("httpx", "httpcore")
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
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
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRIBUTES:
                record.__dict__[key] = redact_value(key, value)
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonLineFormatter(JsonFormatter):
    """{"time", "level", "logger", "message", context fields…, "exception"}: one object per line."""

    def __init__(self) -> None:
        super().__init__("{asctime}{levelname}{name}{message}", style="{", json_ensure_ascii=False,
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger",
                                        "exc_info": "exception", "stack_info": "stack"})

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_time(record.created)


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
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def resolve_log_format(option: str | None, configured: str | None, default: LogFormat) -> LogFormat:
    """The command line wins over the settings' `log_format`, which wins over the command's own default."""
    return (option or configured or default)  # type: ignore[return-value]
