"""A processing attempt on the event store: counted and committed first, then held, then finished.

Every transition is a conditional UPDATE on the attempt number, so a task that runs twice, concurrently or after its
worker was killed cannot move an event twice: correctness comes from the database, never from the broker. A task
message carries several events; each step works on all of them in one statement, except for events tried before:
those are counted one at a time (`begin_attempt`), each right before its own work, so that an event that keeps
killing its worker spends its own attempts and not those of the other events of its message.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import JSON, BigInteger, Connection, Engine, Row, bindparam, cast, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import any_

from ingest.db import execute_committed_rows
from ingest.schema import Event, EventStatus, utcnow


@dataclass(frozen=True)
class Attempt:
    """The attempt begin_attempts counted: its number, and whose event it is (for the log lines of the attempt)."""

    number: int
    source: str
    provider: str


EVENTS = Event.__table__
_THIS_ATTEMPT = (EVENTS.c.id == bindparam("event_id"), EVENTS.c.status == EventStatus.PROCESSING,
                 EVENTS.c.attempts == bindparam("attempt"))
# Built once: these run for every event processed, and building an UPDATE costs more CPU than running it.
_HOLD = (  # the no-op write takes the row locks; RETURNING hands over what processing reads
    update(EVENTS)
    .where(tuple_(EVENTS.c.id, EVENTS.c.attempts).in_(bindparam("held_attempts", expanding=True)),
           EVENTS.c.status == EventStatus.PROCESSING)
    .values(status=EventStatus.PROCESSING)
    .returning(EVENTS.c.id, EVENTS.c.source, EVENTS.c.provider, EVENTS.c.received_at, EVENTS.c.method,
               EVENTS.c.path, EVENTS.c.query_string, EVENTS.c.headers, EVENTS.c.body, EVENTS.c.content_type,
               EVENTS.c.remote_addr)
)
_FINISH = update(EVENTS).where(*_THIS_ATTEMPT).values(
    status=bindparam("final_status"), processed_at=bindparam("now"),
    result=bindparam("outcome", type_=JSON(none_as_null=True)),  # no result is SQL NULL, not JSON null
    error_class=bindparam("reason_class"), error_message=bindparam("reason"))


_UNFINISHED = or_(EVENTS.c.status == EventStatus.RECEIVED, EVENTS.c.status == EventStatus.PROCESSING)


@cache
def _begin_statement(dialect: str, fresh_only: bool):
    """On PostgreSQL the ids are one array parameter: the statement's text is the same for any number of ids, so
    the driver prepares it once (an IN list would be a new statement for every length). `fresh_only`: count only
    the events never tried (an event tried before waits for `begin_attempt`)."""
    ids = EVENTS.c.id == any_(cast(bindparam("event_ids"), ARRAY(BigInteger))) if dialect == "postgresql" \
        else EVENTS.c.id.in_(bindparam("event_ids", expanding=True))
    never_tried = (EVENTS.c.attempts == 0,) if fresh_only else ()
    return (update(EVENTS)
            .where(ids, _UNFINISHED, *never_tried)
            .values(status=EventStatus.PROCESSING, attempts=EVENTS.c.attempts + 1)
            .returning(EVENTS.c.id, EVENTS.c.attempts, EVENTS.c.source, EVENTS.c.provider))


def begin_attempts(engine: Engine, event_ids: list[int], max_attempts: int, *, fresh_only: bool = False
                   ) -> dict[int, Attempt]:
    """Count an attempt for each event and mark it in flight; the attempts, by event id, of those that are ours to
    process (an event already finished, or out of attempts, has none). `fresh_only`: only the events never tried;
    one tried before (its previous attempt was interrupted, or failed on a transient error) is left out, for
    `begin_attempt` to count when its turn comes.

    Committed on its own before the work starts (one autocommitted statement on PostgreSQL), so a worker killed
    mid-task still leaves a trace and an event that keeps killing workers goes dead instead of looping forever.
    """
    rows = execute_committed_rows(engine, _begin_statement(engine.dialect.name, fresh_only),
                                  {"event_ids": sorted(set(event_ids))})
    attempts = {event_id: Attempt(number, source, provider) for event_id, number, source, provider in rows}
    exhausted = {event_id: attempt for event_id, attempt in attempts.items() if attempt.number > max_attempts}
    if exhausted:
        with engine.begin() as connection:
            for event_id, attempt in sorted(exhausted.items()):
                finish(connection, event_id, attempt.number, EventStatus.DEAD, error_class="attempts_exhausted",
                       error_message=f"processing was interrupted {attempt.number - 1} times (worker killed or "
                                     "timed out)")
    return {event_id: attempt for event_id, attempt in attempts.items() if event_id not in exhausted}


def begin_attempt(engine: Engine, event_id: int, max_attempts: int) -> Attempt | None:
    """Count one more attempt for this one event, committed on its own right before its work; None if it is not ours
    to process (finished, or out of attempts: then it is dead now)."""
    return begin_attempts(engine, [event_id], max_attempts).get(event_id)


def tried_before(engine: Engine, event_ids: list[int]) -> list[int]:
    """Of these events, those not finished yet, fewest attempts first: the event that killed the previous run has
    one attempt more than those it took down with it, so they go first and finish before it can kill this run."""
    statement = select(EVENTS.c.id).where(EVENTS.c.id.in_(sorted(set(event_ids))), _UNFINISHED) \
        .order_by(EVENTS.c.attempts, EVENTS.c.id)
    with engine.connect() as connection:
        return list(connection.scalars(statement))


def hold(session: Session, attempts: dict[int, int]) -> dict[int, Row]:
    """Lock the events for these attempts ({event id: attempt number}); what processing needs of each (raw request,
    source, provider, received_at), by event id. An event a newer attempt took over is left out."""
    if not attempts:
        return {}
    rows = session.execute(_HOLD, {"held_attempts": sorted(attempts.items())})
    return {row.id: row for row in rows}


@dataclass(frozen=True)
class Ending:
    """How an attempt ends: the event's final status, and its result or the reason."""

    event_id: int
    attempt: int
    status: EventStatus
    result: dict | None = None
    error_class: str | None = None
    error_message: str | None = None


def finish_all(session: Session | Connection, endings: list[Ending]) -> None:
    """Write the endings of attempts this transaction holds: one statement for all of them."""
    now = utcnow()
    rows = [{"event_id": ending.event_id, "attempt": ending.attempt, "final_status": str(ending.status), "now": now,
             "outcome": ending.result, "reason_class": ending.error_class, "reason": ending.error_message}
            for ending in endings]
    if rows:
        session.execute(_FINISH, rows if len(rows) > 1 else rows[0])


def finish(session: Session | Connection, event_id: int, attempt: int, status: EventStatus, *,
           error_class: str | None = None, error_message: str | None = None) -> None:
    finish_all(session, [Ending(event_id, attempt, status, error_class=error_class, error_message=error_message)])
