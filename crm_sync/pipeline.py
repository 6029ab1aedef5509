"""process_events: stored raw requests in, canonical records applied, each event's final status out.

Plain functions over a sessionmaker: the Celery task only calls `process_events`, so all of this runs and is tested
without a broker. Every path ends the event `processed`, `ignored` or `dead` with a reason.

The events of one task message are processed in one transaction: a commit, a session and the attempt's bookkeeping
statements cost more than most events' own work. If any of them fails, none of that transaction is kept and each
event goes again in a transaction of its own, so one event's failure (or conflict) is never another's.

A failure that kills the worker (os._exit, the OOM killer, the hard time limit) ends the process before that
fallback: the message is redelivered with all its events counted once. Events tried before therefore go one at a
time, each counted right before its own transaction, so only the one that kills the worker runs out of attempts.
"""
from __future__ import annotations

import logging
import random
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import ValidationError
from sqlalchemy import Row
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.delivery.planning import plan_deliveries
from crm_sync.identity import Origin
from crm_sync.interactions import RecordedInteraction, record_reports
from crm_sync.prepared import Parsed, Prepared, prepare
from crm_sync.observe import attempt_context, attempt_ended, attempt_started, not_attempted, observed_attempt
from crm_sync.store import StoreOptions, apply_event, facts_for
from ingest.attempts import Attempt, Ending, begin_attempt, begin_attempts, finish, finish_all, hold, tried_before
from ingest.db import transaction
from ingest.events import raw_request_of
from ingest.providers import IgnoreEvent, ParseError, UnknownProvider, get_provider
from ingest.schema import EventStatus, utcnow

log = logging.getLogger(__name__)
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
# PostgreSQL's "try again" answers: deadlock, serialization failure, a NOWAIT lock held by another transaction.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001", "55P03"})
CONFLICT_RETRIES = 8


class Outcome(StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    DEAD = "dead"
    SKIPPED = "skipped"  # already finished, or another attempt holds it


@dataclass(frozen=True)
class Processed:
    """What applying one event left to write at the end of its transaction: its ending, and the interactions to
    plan deliveries for (one statement each for all the events of the transaction)."""

    ending: Ending
    interactions: list[RecordedInteraction | None] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.ending.status.value)


def process_event(sessions: sessionmaker[Session], event_id: int, max_attempts: int = 5,
                  options: StoreOptions | None = None, planned_for: set[str] | None = None) -> Outcome:
    """Process one stored event exactly once in effect, however often and concurrently it is called."""
    return process_events(sessions, [event_id], max_attempts, options, planned_for)[0]


def process_events(sessions: sessionmaker[Session], event_ids: list[int], max_attempts: int = 5,
                   options: StoreOptions | None = None, planned_for: set[str] | None = None) -> list[Outcome]:
    """Process stored events exactly once in effect, however often and concurrently called; each one's outcome.

    A transient database error propagates (the caller retries) once the other events have had their turn; anything
    else finishes the event. Once the processing transaction has committed, `planned_for` receives the destinations
    that got new deliveries.
    """
    options = options or StoreOptions()
    asked_at = utcnow()
    engine = sessions.kw["bind"]
    fresh = begin_attempts(engine, event_ids, max_attempts, fresh_only=True)
    outcomes = _process_together(sessions, fresh, options, planned_for) if len(fresh) > 1 else {}
    queue: list[tuple[int, Attempt | None]] = [(event_id, attempt) for event_id, attempt in sorted(fresh.items())
                                               if event_id not in outcomes]
    others = [event_id for event_id in dict.fromkeys(event_ids) if event_id not in fresh]
    suspects = tried_before(engine, others) if others else []
    queue += [(event_id, None) for event_id in suspects]   # counted by _one_by_one, right before each one's work
    for event_id in others:
        if event_id not in suspects:
            not_attempted(sessions, event_id, asked_at)
            outcomes[event_id] = Outcome.SKIPPED
    outcomes.update(_one_by_one(sessions, queue, max_attempts, options, planned_for, asked_at))
    return [outcomes[event_id] for event_id in event_ids]


def _one_by_one(sessions: sessionmaker[Session], queue: list[tuple[int, Attempt | None]], max_attempts: int,
                options: StoreOptions, planned_for: set[str] | None, asked_at: datetime) -> dict[int, Outcome]:
    """Each event in a transaction of its own, its attempt counted first if it is not yet (None). A transient error
    of one event is raised once the others are done, so it does not hold them back; two in a row are the database
    failing, not an event: they are raised at once, and the task's retry comes back for the rest."""
    outcomes: dict[int, Outcome] = {}
    failure: Exception | None = None
    failed_last = False
    for event_id, attempt in queue:
        attempt = attempt or begin_attempt(sessions.kw["bind"], event_id, max_attempts)
        if attempt is None:   # finished meanwhile, or out of attempts (dead now)
            not_attempted(sessions, event_id, asked_at)
            outcomes[event_id] = Outcome.SKIPPED
            continue
        try:
            with observed_attempt(sessions, event_id, attempt) as watch:
                watch.outcome = _attempt(sessions, event_id, attempt.number, options, planned_for)
        except TRANSIENT_DB_ERRORS as exc:
            if failed_last:
                raise
            failure, failed_last = failure or exc, True
            continue
        failed_last = False
        outcomes[event_id] = watch.outcome
    if failure is not None:
        raise failure
    return outcomes


def _process_together(sessions: sessionmaker[Session], attempts: dict[int, Attempt], options: StoreOptions,
                      planned_for: set[str] | None) -> dict[int, Outcome]:
    """All the events in one transaction; their outcomes, or none at all if any of them raised."""
    ran: list[tuple[int, Outcome, float]] = []
    started_at = utcnow()
    try:
        with transaction(sessions) as session:
            held = hold(session, {event_id: attempt.number for event_id, attempt in attempts.items()})
            parsed = {event_id: _parse(event, attempts[event_id].number, options)
                      for event_id, event in sorted(held.items())}
            prepared = prepare(session, [(_origin(held[event_id]), item) for event_id, item in parsed.items()
                                         if isinstance(item, Parsed)], options)
            applied: list[Processed] = []
            for event_id, attempt in sorted(attempts.items()):
                with attempt_context(event_id, attempt):
                    attempt_started(attempt)
                    started = time.perf_counter()
                    event = held.get(event_id)
                    processed = None if event is None else _process_held(event, attempt.number, session, options,
                                                                         parsed[event_id], prepared)
                    if processed is not None:
                        applied.append(processed)
                    ran.append((event_id, processed.outcome if processed else Outcome.SKIPPED,
                                time.perf_counter() - started))
            prepared.fresh.finish(session)
            planned = _conclude(session, applied, options)
    except Exception as exc:  # nothing of it was kept: each event goes again on its own
        log.info("%d events could not be processed together (%s), so each goes in a transaction of its own",
                 len(attempts), type(exc).__name__)
        return {}
    if planned_for is not None:
        planned_for.update(planned)
    for event_id, outcome, seconds in ran:
        with attempt_context(event_id, attempts[event_id]):
            attempt_ended(sessions, event_id, attempts[event_id], outcome, started_at, seconds)
    return {event_id: outcome for event_id, outcome, _ in ran}


def _attempt(sessions: sessionmaker[Session], event_id: int, attempt: int, options: StoreOptions,
             planned_for: set[str] | None) -> Outcome:
    try:
        return _run_attempt(sessions, event_id, attempt, options, planned_for)
    except TRANSIENT_DB_ERRORS:
        raise
    except Exception as exc:  # a bug: keep the reason, make it replayable after the fix
        log.exception("event %s: processing failed", event_id)
        with transaction(sessions) as session:
            finish(session, event_id, attempt, EventStatus.DEAD, error_class="processing_error",
                   error_message=_describe(exc))
        return Outcome.DEAD


def _run_attempt(sessions: sessionmaker[Session], event_id: int, attempt: int, options: StoreOptions,
                 planned_for: set[str] | None) -> Outcome:
    """The processing transaction; rerun at once when PostgreSQL reports a conflict with a concurrent event."""
    tries = 0
    while True:
        tries += 1
        try:
            with transaction(sessions) as session:
                event = hold(session, {event_id: attempt}).get(event_id)
                if event is None:
                    return Outcome.SKIPPED
                processed = _process_held(event, attempt, session, options)
                planned = _conclude(session, [processed], options)
            if planned_for is not None:
                planned_for.update(planned)
            return processed.outcome
        except OperationalError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if tries >= CONFLICT_RETRIES or sqlstate not in CONFLICT_SQLSTATES:
                raise
            log.info("event %s: conflict with a concurrent event (%s), retrying", event_id, sqlstate)
            time.sleep(random.uniform(0, 0.01 * tries))  # jitter, so the same two do not collide again


def _parse(event: Row, attempt: int, options: StoreOptions) -> Parsed | Processed:
    """The event's records, or its ending if the provider cannot read it or ignores it."""
    def ending(status: EventStatus, **details) -> Processed:
        return Processed(Ending(event.id, attempt, status, **details))

    try:
        records = get_provider(event.provider).parse_stored(raw_request_of(event), event.id)
    except UnknownProvider as exc:
        return ending(EventStatus.DEAD, error_class="unknown_provider", error_message=str(exc))
    except (ParseError, ValidationError) as exc:
        return ending(EventStatus.DEAD, error_class="parse_error", error_message=str(exc))
    except IgnoreEvent as exc:
        return ending(EventStatus.IGNORED, error_class="ignored", error_message=str(exc))
    return Parsed(records, facts_for(_origin(event), records, options))


def _process_held(event: Row, attempt: int, session: Session, options: StoreOptions,
                  parsed: Parsed | Processed | None = None, prepared: Prepared | None = None) -> Processed:
    parsed = parsed or _parse(event, attempt, options)
    if isinstance(parsed, Processed):
        return parsed
    applied = apply_event(session, _origin(event), parsed.records, options, parsed.facts, prepared)
    result = {"records": [record.model_dump(mode="json", exclude_defaults=True) for record in parsed.records],
              **applied.summary()}   # kept on the event for the admin API
    return Processed(Ending(event.id, attempt, EventStatus.PROCESSED, result=result), applied.interactions)


def _conclude(session: Session, processed: list[Processed], options: StoreOptions) -> set[str]:
    """Plan the deliveries and write the endings of the transaction's events; the destinations with new work.

    Planning once for all of them plans an interaction that two of the events reported as the later one left it."""
    interactions = [interaction for item in processed for interaction in item.interactions]
    record_reports(session, interactions)
    planned = plan_deliveries(session, interactions, options.destinations)
    finish_all(session, [item.ending for item in processed])
    return planned


def _origin(event: Row) -> Origin:
    return Origin(event_id=event.id, source=event.source, provider=event.provider, received_at=event.received_at)


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
