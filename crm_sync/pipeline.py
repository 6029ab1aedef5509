"""process_event: a stored raw request in, canonical records applied, the event's final status out.

Plain functions over a sessionmaker: the Celery task only calls `process_event`, so all of this runs and is tested
without a broker. Every path ends the event `processed`, `ignored` or `dead` with a reason.
"""
from __future__ import annotations

import logging
import traceback
from enum import StrEnum

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.model import CanonicalRecord
from ingest.db import transaction
from ingest.events import begin_attempt, finish, hold, raw_request_of
from ingest.providers import IgnoreEvent, ParseError, UnknownProvider, get_provider
from ingest.schema import Event, EventStatus

log = logging.getLogger(__name__)
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


class Outcome(StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    DEAD = "dead"
    SKIPPED = "skipped"  # already finished, or another attempt holds it


def process_event(sessions: sessionmaker[Session], event_id: int, max_attempts: int = 5) -> Outcome:
    """Process one stored event exactly once in effect, however often and concurrently it is called.

    A transient database error propagates (the caller retries); anything else finishes the event.
    """
    with transaction(sessions) as session:
        attempt = begin_attempt(session, event_id, max_attempts)
    if attempt is None:
        return Outcome.SKIPPED
    try:
        with transaction(sessions) as session:
            if not hold(session, event_id, attempt):
                return Outcome.SKIPPED
            return _process_held(session, session.get(Event, event_id), attempt)
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception as exc:  # a bug: keep the reason, make it replayable after the fix
        log.exception("event %s: processing failed", event_id)
        with transaction(sessions) as session:
            finish(session, event_id, attempt, EventStatus.DEAD, error_class="processing_error",
                   error_message=_describe(exc))
        return Outcome.DEAD


def _process_held(session: Session, event: Event, attempt: int) -> Outcome:
    try:
        records = get_provider(event.provider).parse(raw_request_of(event))
    except UnknownProvider as exc:
        return _end(session, event, attempt, EventStatus.DEAD, "unknown_provider", str(exc))
    except (ParseError, ValidationError) as exc:
        return _end(session, event, attempt, EventStatus.DEAD, "parse_error", str(exc))
    except IgnoreEvent as exc:
        return _end(session, event, attempt, EventStatus.IGNORED, "ignored", str(exc))
    result = apply_records(session, event, records)
    finish(session, event.id, attempt, EventStatus.PROCESSED, result=result)
    return Outcome.PROCESSED


def apply_records(session: Session, event: Event, records: list[CanonicalRecord]) -> dict:
    """What the event produced, kept on the event for `GET /api/events/<id>`."""
    return {"records": [record.model_dump(mode="json", exclude_defaults=True) for record in records]}


def _end(session: Session, event: Event, attempt: int, status: EventStatus, error_class: str, message: str) -> Outcome:
    finish(session, event.id, attempt, status, error_class=error_class, error_message=message)
    return Outcome(status.value)


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
