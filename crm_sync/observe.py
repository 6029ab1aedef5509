"""What an operator sees of event processing: a log line when an attempt starts and one when it ends, and metrics.

`observed_attempt` wraps one counted attempt: every line logged meanwhile (by us or a library) carries its event_id,
source and provider, and the closing line says how it ended and why, read back from the event row itself (status,
error class and message), so it is what the admin API will show too. `not_attempted` reports a call that found the
event not to be processed (finished already, held by another attempt, or out of attempts).
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_sync import metrics
from crm_sync.destinations.base import MAX_ERROR_MESSAGE
from ingest.attempts import Attempt
from ingest.logs import log_context
from ingest.schema import Event, EventStatus, utcnow

log = logging.getLogger("crm_sync.pipeline")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class EventState:
    source: str
    provider: str
    status: str
    attempts: int
    error_class: str | None
    error_message: str | None
    processed_at: datetime | None


PROCESSED_STATE = EventState(source=None, provider=None, status=EventStatus.PROCESSED, attempts=0, error_class=None,
                             error_message=None, processed_at=None)


@dataclass
class Watch:
    """What the attempt ended with: set by the code inside `observed_attempt`."""

    outcome: str = "skipped"


@contextmanager
def observed_attempt(sessions: sessionmaker[Session], event_id: int, attempt: Attempt) -> Iterator[Watch]:
    watch = Watch()
    with attempt_context(event_id, attempt):
        attempt_started(attempt)
        started, started_at = time.perf_counter(), utcnow()
        try:
            yield watch
        except Exception as exc:
            metrics.event_finished(attempt.provider, "retried", time.perf_counter() - started)
            log.warning("event processing interrupted, the task retries: %s", type(exc).__name__,
                        extra={"outcome": "retried", "reason": type(exc).__name__})
            raise
        attempt_ended(sessions, event_id, attempt, watch.outcome, started_at, time.perf_counter() - started)


def attempt_context(event_id: int, attempt: Attempt):
    """Every line logged inside names the event, its source and its provider."""
    return log_context(event_id=event_id, source=attempt.source, provider=attempt.provider)


def attempt_started(attempt: Attempt) -> None:
    log.info("event processing", extra={"attempt": attempt.number})


def attempt_ended(sessions: sessionmaker[Session], event_id: int, attempt: Attempt, outcome: str,
                  started_at: datetime, seconds: float) -> None:
    """The closing line and the metrics, once the attempt's transaction has ended."""
    outcome = str(outcome)
    # A processed event's state is known: its transaction committed. Others are read back for the reason.
    after = PROCESSED_STATE if outcome == EventStatus.PROCESSED else read_state(sessions, event_id)
    metrics.event_finished(attempt.provider, _report(outcome, after, started_at, seconds), seconds)


def not_attempted(sessions: sessionmaker[Session], event_id: int, asked_at: datetime) -> None:
    """Log and count a call that did not process the event: why, read from the event row."""
    state = read_state(sessions, event_id)
    source, provider = (state.source, state.provider) if state else (None, UNKNOWN)
    with log_context(event_id=event_id, source=source, provider=provider):
        metrics.event_finished(provider, _report("skipped", state, asked_at, 0.0), 0.0)


def read_state(sessions: sessionmaker[Session], event_id: int) -> EventState | None:
    with sessions() as session:
        row = session.execute(select(Event.source, Event.provider, Event.status, Event.attempts, Event.error_class,
                                     Event.error_message, Event.processed_at).where(Event.id == event_id)).first()
    return EventState(*row) if row else None


def _report(outcome: str, state: EventState | None, started_at: datetime, seconds: float) -> str:
    """Log how the attempt ended; the outcome to count (a skip that ran out of attempts is a death)."""
    fields = {"outcome": outcome, "duration_ms": round(seconds * 1000, 3)}
    if state is None:
        log.warning("event not found", extra=fields)
        return outcome
    fields["status"] = state.status
    if state.error_class:
        fields["reason"] = state.error_class
    if outcome == "skipped" and state.status == EventStatus.DEAD and state.processed_at \
            and state.processed_at >= started_at:  # the attempt counter ran out: this call declared it dead
        outcome = fields["outcome"] = "dead"
    if outcome == "skipped":
        log.info("event skipped: it is %s (or another attempt holds it)", state.status, extra=fields)
    elif outcome == "dead":
        log.warning("event dead: %s", state.error_message, extra=fields)
    elif outcome == "ignored":
        log.info("event ignored: %s", state.error_message, extra=fields)
    else:
        log.info("event %s", outcome, extra=fields)
    return outcome


delivery_log = logging.getLogger("crm_sync.delivery")


def delivery_attempt_ended(destination: str, claimed, outcome, status: str | None) -> None:
    """One log line and the metrics of one delivery attempt.

    `claimed` names the delivery (delivery_id, interaction_id, attempt); `outcome` is the CRM module's result or
    DeliveryError; `status` what the delivery row became (succeeded, failed, pending, dead), None when the attempt
    was not recorded because the row changed meanwhile.
    """
    fields = {"delivery_id": claimed.delivery_id, "destination": destination,
              "interaction_id": claimed.interaction_id, "attempt": claimed.attempt}
    if status is None:
        delivery_log.info("delivery attempt not recorded: the delivery changed meanwhile",
                          extra={**fields, "outcome": "superseded"})
        return
    reason = getattr(outcome, "reason", None)
    if reason is None:
        metrics.delivery_attempted(destination, "succeeded")
        metrics.delivery_finished(destination, "succeeded", claimed.attempt)
        delivery_log.info("delivery succeeded", extra={**fields, "outcome": "succeeded",
                                                       "crm_record_id": getattr(outcome, "contact_record_id", None)})
        return
    ended = "dead" if status == "dead" else "failed"
    metrics.delivery_attempted(destination, ended, reason)
    fields.update(outcome=ended, reason=reason, status=status)
    message = (outcome.message or "")[:MAX_ERROR_MESSAGE]   # as long as the stored one
    if ended == "dead":
        metrics.delivery_finished(destination, "dead", claimed.attempt)
        delivery_log.warning("delivery dead: %s", message, extra=fields)
    else:
        delivery_log.info("delivery failed, tried again later: %s", message, extra=fields)
