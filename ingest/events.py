"""The raw event store: one committed write per request, race-safe deduplication, and status transitions.

Every transition is a conditional UPDATE, so a task that runs twice, concurrently or after its worker was killed
cannot move an event twice: correctness comes from the database, never from the broker.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from enum import Enum
from typing import Callable, NamedTuple, Sequence

from sqlalchemy import JSON, Connection, Engine, Executable, Insert, Row, bindparam, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ingest.db import insert_for
from ingest.providers.base import RawRequest
from ingest.schema import FINAL_STATUSES, Event, EventStatus, utcnow

ALWAYS_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


@dataclass(frozen=True)
class StoredEvent:
    id: int
    is_duplicate: bool
    duplicate_count: int
    received_at: datetime


def storable_headers(headers: dict[str, str], secret_headers: frozenset[str]) -> dict[str, str]:
    hidden = ALWAYS_SECRET_HEADERS | secret_headers
    return {name: value for name, value in headers.items() if name.lower() not in hidden}


def store_event(engine: Engine, *, source: str, provider: str, dedup_key: str, request: RawRequest,
                secret_headers: frozenset[str] = frozenset()) -> StoredEvent:
    """INSERT the request, or count a redelivery on the first one: one statement, one commit, race-safe.

    `ON CONFLICT DO UPDATE … RETURNING` returns the first event's row under any concurrency, which is why a
    redelivery gets the very same reply (and Roistat the very same order_id) as the first delivery did.
    """
    now = utcnow()
    row_values = {
        "source": source, "provider": provider, "dedup_key": dedup_key,
        "method": request.method, "path": request.path, "query_string": request.query_string,
        "headers": storable_headers(request.headers, secret_headers), "body": request.body,
        "content_type": request.content_type, "remote_addr": request.remote_addr,
        "received_at": now, "duplicate_count": 0, "status": EventStatus.RECEIVED, "enqueued_at": now, "attempts": 0,
    }
    event_id, duplicate_count, received_at = _execute_committed(engine, _upsert_statement(engine), row_values,
                                                                _driver_values)
    return StoredEvent(id=event_id, is_duplicate=duplicate_count > 0, duplicate_count=duplicate_count,
                       received_at=received_at)


def _execute_committed(engine: Engine, statement: Executable, values: dict,
                       for_driver: Callable[[dict], dict] = dict) -> Sequence | None:
    """Run one statement as its own committed transaction; its row (None if it returned none).

    On PostgreSQL in autocommit mode the statement is its own transaction: the server commits (and with
    synchronous_commit flushes) it before it reports ready, and psycopg returns only after that report, so a row in
    hand is a durable row. One round trip instead of three (BEGIN, INSERT, COMMIT). SQLite takes the explicit
    transaction that ingest.db sets up for it. `for_driver` gives the values as the driver takes them (what
    SQLAlchemy's bind processing would have made of them).
    """
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        return _execute_through_driver(engine, statement, for_driver(values))
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            return connection.execution_options(isolation_level="AUTOCOMMIT").execute(statement, values).first()
    with engine.begin() as connection:
        return connection.execute(statement, values).first()


def _execute_through_driver(engine: Engine, statement: Executable, values: dict) -> Sequence | None:
    """The ingress hot path on psycopg: the pooled connection's driver, a prepared statement, autocommit.

    SQLAlchemy's per-execution bookkeeping (execution context, isolation level set and reset, result wrapping) cost
    the request about as much CPU as the driver itself, and none of it does anything for one fixed statement.
    Driver errors come out as SQLAlchemy's, and the connection that raised one is not reused.
    """
    sql, constants = _driver_form(engine, statement)
    dbapi_error = engine.dialect.loaded_dbapi.Error
    try:
        pooled = engine.raw_connection()
    except dbapi_error as exc:  # the pool hands out the driver's own error when it cannot connect
        raise DBAPIError.instance(None, None, exc, dbapi_error, connection_invalidated=True) from exc
    try:
        driver = pooled.driver_connection
        driver.autocommit = True
        try:
            with driver.cursor() as cursor:
                cursor.execute(sql, {**constants, **values}, prepare=True)
                return cursor.fetchone()
        finally:
            driver.autocommit = False
    except dbapi_error as exc:
        pooled.invalidate(exc)
        # Without the parameters: they hold the request body, and the error goes to the log.
        raise DBAPIError.instance(sql, None, exc, dbapi_error) from exc
    finally:
        pooled.close()


def _driver_form(engine: Engine, statement: Executable) -> tuple[str, dict]:
    """The statement's SQL for the driver, and the values of the parameters it binds itself (`+ 1`, a status)."""
    key = (engine.dialect.name, engine.dialect.driver, id(statement))
    form = _driver_statements.get(key)
    if form is None:
        compiled = statement.compile(dialect=engine.dialect)
        # psycopg would send an enum's name: send its value, as SQLAlchemy does
        constants = {name: value.value if isinstance(value, Enum) else value for name, value in compiled.params.items()}
        form = _driver_statements[key] = (compiled.string, constants)
    return form


def _driver_values(values: dict) -> dict:
    """What SQLAlchemy's bind processing would send for these columns: JSON wrapped, enums as their value."""
    from psycopg.types.json import Json

    return {**values, "headers": Json(values["headers"]), "status": str(values["status"])}


_UPSERT_COLUMNS = ("source", "provider", "dedup_key", "method", "path", "query_string", "headers", "body",
                   "content_type", "remote_addr", "received_at", "duplicate_count", "status", "enqueued_at", "attempts")
_upsert_statements: dict[str, Insert] = {}
_driver_statements: dict[tuple, tuple[str, dict]] = {}


def _upsert_statement(engine: Engine) -> Insert:
    """Built once per dialect with bound parameters: every request reuses its compiled form (the ingress hot path
    otherwise spends most of its insert time constructing and caching a new ORM statement)."""
    statement = _upsert_statements.get(engine.dialect.name)
    if statement is None:
        table = Event.__table__
        insert = insert_for(engine)(table).values(
            {name: bindparam(name, type_=table.c[name].type) for name in _UPSERT_COLUMNS})
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.source, table.c.dedup_key],
            set_={"duplicate_count": table.c.duplicate_count + 1, "last_duplicate_at": insert.excluded.received_at},
        ).returning(table.c.id, table.c.duplicate_count, table.c.received_at)
        _upsert_statements[engine.dialect.name] = statement
    return statement


def raw_request_of(event: Event | Row) -> RawRequest:
    """The request as it was received, from an Event or a row with its columns (what `hold` returns)."""
    return RawRequest(
        method=event.method, path=event.path, query_string=event.query_string or "",
        headers=dict(event.headers or {}), body=event.body or b"", content_type=event.content_type or "",
        remote_addr=event.remote_addr or "",
    )


def mark_not_enqueued(session: Session, event_ids: list[int]) -> None:
    """The broker refused the publish: make the events the relay's first pick."""
    session.execute(update(Event).where(Event.id.in_(event_ids), Event.status == EventStatus.RECEIVED)
                    .values(enqueued_at=None))


class EventRef(NamedTuple):
    """An event as the outbox hands it on: its id, and its source for the log line that says it was enqueued."""

    id: int
    source: str


def claim_for_relay(session: Session, *, requeue_after: timedelta, limit: int, stale: bool = True
                    ) -> list[EventRef]:
    """Events never enqueued, and (`stale`) those waiting or in flight for longer than `requeue_after` (lost
    message, dead worker).

    Each is claimed by a compare-and-set on enqueued_at, so two relays running at once never both take it; this works
    on SQLite, which has no row locks, as well as on PostgreSQL.
    """
    now = utcnow()
    waiting = Event.enqueued_at.is_(None)
    if stale:
        waiting = or_(waiting, Event.enqueued_at < now - requeue_after)
    candidates = session.execute(
        select(Event.id, Event.source, Event.enqueued_at)
        .where(Event.status.in_([EventStatus.RECEIVED, EventStatus.PROCESSING]), waiting)
        .order_by(Event.id).limit(limit)
    ).all()
    claimed = []
    for event_id, source, seen in candidates:
        same = Event.enqueued_at.is_(None) if seen is None else Event.enqueued_at == seen
        result = session.execute(update(Event).where(Event.id == event_id, same).values(enqueued_at=now))
        if result.rowcount == 1:
            claimed.append(EventRef(event_id, source))
    return claimed


@dataclass(frozen=True)
class Attempt:
    """The attempt begin_attempt counted: its number, and whose event it is (for the log lines of the attempt)."""

    number: int
    source: str
    provider: str


EVENTS = Event.__table__
_THIS_ATTEMPT = (EVENTS.c.id == bindparam("event_id"), EVENTS.c.status == EventStatus.PROCESSING,
                 EVENTS.c.attempts == bindparam("attempt"))
# Built once: these run for every event processed, and building an UPDATE costs more CPU than running it.
_BEGIN_ATTEMPT = (
    update(EVENTS)
    .where(EVENTS.c.id == bindparam("event_id"),
           or_(EVENTS.c.status == EventStatus.RECEIVED, EVENTS.c.status == EventStatus.PROCESSING))
    .values(status=EventStatus.PROCESSING, attempts=EVENTS.c.attempts + 1)
    .returning(EVENTS.c.attempts, EVENTS.c.source, EVENTS.c.provider)
)
_HOLD = (  # the no-op write takes the row lock; RETURNING hands over what processing reads
    update(EVENTS).where(*_THIS_ATTEMPT).values(status=EventStatus.PROCESSING)
    .returning(EVENTS.c.id, EVENTS.c.source, EVENTS.c.provider, EVENTS.c.received_at, EVENTS.c.method,
               EVENTS.c.path, EVENTS.c.query_string, EVENTS.c.headers, EVENTS.c.body, EVENTS.c.content_type,
               EVENTS.c.remote_addr)
)
_FINISH = update(EVENTS).where(*_THIS_ATTEMPT).values(
    status=bindparam("final_status"), processed_at=bindparam("now"),
    result=bindparam("outcome", type_=JSON(none_as_null=True)),  # no result is SQL NULL, not JSON null
    error_class=bindparam("reason_class"), error_message=bindparam("reason"))


def begin_attempt(engine: Engine, event_id: int, max_attempts: int) -> Attempt | None:
    """Count an attempt and mark the event in flight; the attempt, or None if it is not ours to process.

    Committed on its own before the work starts (one autocommitted statement on PostgreSQL), so a worker killed
    mid-task still leaves a trace and an event that keeps killing workers goes dead instead of looping forever.
    """
    row = _execute_committed(engine, _BEGIN_ATTEMPT, {"event_id": event_id})
    if row is None:
        return None
    attempt = Attempt(*row)
    if attempt.number > max_attempts:
        with engine.begin() as connection:
            finish(connection, event_id, attempt.number, EventStatus.DEAD, error_class="attempts_exhausted",
                   error_message=f"processing was interrupted {attempt.number - 1} times (worker killed or timed "
                                 "out)")
        return None
    return attempt


def hold(session: Session, event_id: int, attempt: int) -> Row | None:
    """Lock the event for this attempt; what processing needs of it (raw request, source, provider, received_at),
    or None if a newer attempt took over."""
    return session.execute(_HOLD, {"event_id": event_id, "attempt": attempt}).first()


def finish(session: Session | Connection, event_id: int, attempt: int, status: EventStatus, *, result: dict | None = None,
           error_class: str | None = None, error_message: str | None = None) -> bool:
    outcome = session.execute(_FINISH, {
        "event_id": event_id, "attempt": attempt, "final_status": str(status), "now": utcnow(), "outcome": result,
        "reason_class": error_class, "reason": error_message})
    return outcome.rowcount == 1


def reset_for_replay(session: Session, event_ids: list[int]) -> list[EventRef]:
    """Put finished events back to `received` for the current code to process again; in-flight ones are left, and
    so are purged ones (their raw request is gone)."""
    rows = session.execute(
        update(Event).where(Event.id.in_(event_ids), Event.status.in_(FINAL_STATUSES), Event.purged_at.is_(None))
        .values(status=EventStatus.RECEIVED, attempts=0, error_class=None, error_message=None, enqueued_at=utcnow())
        .returning(Event.id, Event.source)
    ).all()
    return sorted(EventRef(*row) for row in rows)
