"""The raw event store: one committed write per request, race-safe deduplication, and the outbox's and replay's
transitions (the processing attempt's are in ingest.attempts).

Every transition is a conditional UPDATE, so a relay or replay that runs twice, or two at once, cannot move an event
twice: correctness comes from the database, never from the broker.
"""
from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Engine, Insert, Row, bindparam, null, or_, select, update
from sqlalchemy.orm import Session

from ingest.db import execute_committed_rows, goes_through_driver, insert_for
from ingest.group_commit import GroupCommit
from ingest.metrics import STORE_BATCH_EVENTS
from ingest.providers.base import RawRequest
from ingest.schema import FINAL_STATUSES, Event, EventStatus, utcnow
from ingest.sqlite_db import sqlite_busy

ALWAYS_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# On SQLite, how long a webhook's INSERT waits for another writer's lock (a CLI command, a worker's transaction)
# before the request is answered 503 for the provider to retry. Everything else waits the 30 s busy timeout, but
# providers stop listening well before that (Jivo after about 3 s): an answer after it reaches nobody. PostgreSQL
# has no such lock, and ignores it.
INGRESS_LOCK_WAIT_SECONDS = 2.0


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
    """INSERT the request, or count a redelivery on the first one: committed before it returns, race-safe.

    `ON CONFLICT DO UPDATE … RETURNING` returns the first event's row under any concurrency, which is why a
    redelivery gets the very same reply (and Roistat the very same order_id) as the first delivery did. Requests
    storing at the same moment share one statement and one commit (ingest.group_commit).
    """
    now = utcnow()
    row_values = {
        "source": source, "provider": provider, "dedup_key": dedup_key,
        "method": request.method, "path": request.path, "query_string": request.query_string,
        "headers": storable_headers(request.headers, secret_headers), "body": request.body,
        "content_type": request.content_type, "remote_addr": request.remote_addr,
        "received_at": now, "duplicate_count": 0, "status": EventStatus.RECEIVED, "enqueued_at": now, "attempts": 0,
    }
    event_id, duplicate_count, received_at = event_writer(engine).submit((source, dedup_key), row_values)
    return StoredEvent(id=event_id, is_duplicate=duplicate_count > 0, duplicate_count=duplicate_count,
                       received_at=received_at)


_UPSERT_COLUMNS = ("source", "provider", "dedup_key", "method", "path", "query_string", "headers", "body",
                   "content_type", "remote_addr", "received_at", "duplicate_count", "status", "enqueued_at", "attempts")
MAX_EVENTS_PER_STATEMENT = 64
_upsert_statements: dict[tuple[str, int], Insert] = {}
_writers: weakref.WeakKeyDictionary[Engine, tuple[int, GroupCommit]] = weakref.WeakKeyDictionary()
_writers_lock = threading.Lock()


def event_writer(engine: Engine) -> GroupCommit:
    """The engine's group commit in this process (a forked child starts its own: its parent's queue is not its)."""
    entry = _writers.get(engine)
    if entry is None or entry[0] != os.getpid():
        with _writers_lock:
            entry = _writers.get(engine)
            if entry is None or entry[0] != os.getpid():
                group = GroupCommit(lambda rows: _upsert_rows(engine, rows), MAX_EVENTS_PER_STATEMENT,
                                    STORE_BATCH_EVENTS.observe, fails_every_write=sqlite_busy)
                entry = _writers[engine] = (os.getpid(), group)
    return entry[1]


def _upsert_rows(engine: Engine, rows: list[dict]) -> list[tuple[int, int, datetime]]:
    """One committed statement for rows with distinct (source, dedup_key): each one's (id, duplicate_count,
    received_at), in the order given."""
    values = {f"{name}_r{index}": value
              for index, row in enumerate(rows) for name, value in _driver_values(engine, row).items()}
    returned = execute_committed_rows(engine, _upsert_statement(engine, len(rows)), values,
                                      lock_wait=INGRESS_LOCK_WAIT_SECONDS)
    by_key = {(source, dedup_key): (event_id, duplicates, received_at)
              for event_id, duplicates, received_at, source, dedup_key in returned}
    return [by_key[row["source"], row["dedup_key"]] for row in rows]


def _driver_values(engine: Engine, values: dict) -> dict:
    """What SQLAlchemy's bind processing would send for these columns, where the statement goes to psycopg itself
    (ingest.db.execute_committed_rows): JSON wrapped, enums as their value."""
    if not goes_through_driver(engine):
        return values
    from psycopg.types.json import Json

    return {**values, "headers": Json(values["headers"]), "status": str(values["status"])}


def _upsert_statement(engine: Engine, rows: int) -> Insert:
    """Built once per dialect and number of rows with bound parameters (`source_r0`, `source_r1`…): every batch of
    that size reuses its compiled form (the ingress hot path otherwise spends most of its insert time constructing
    and caching a new ORM statement)."""
    key = (engine.dialect.name, rows)
    statement = _upsert_statements.get(key)
    if statement is None:
        table = Event.__table__
        insert = insert_for(engine)(table).values([
            {name: bindparam(f"{name}_r{index}", type_=table.c[name].type) for name in _UPSERT_COLUMNS}
            for index in range(rows)])
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.source, table.c.dedup_key],
            set_={"duplicate_count": table.c.duplicate_count + 1, "last_duplicate_at": insert.excluded.received_at},
        ).returning(table.c.id, table.c.duplicate_count, table.c.received_at, table.c.source, table.c.dedup_key)
        _upsert_statements[key] = statement
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


def reset_for_replay(session: Session, event_ids: list[int]) -> list[EventRef]:
    """Put finished events back to `received` for the current code to process again; in-flight ones are left, and
    so are purged ones (their raw request is gone). The previous attempt's result and end time go too: an event
    waiting to be processed must not show what an older code made of it."""
    rows = session.execute(
        update(Event).where(Event.id.in_(event_ids), Event.status.in_(FINAL_STATUSES), Event.purged_at.is_(None))
        .values(status=EventStatus.RECEIVED, attempts=0, error_class=None, error_message=None, enqueued_at=utcnow(),
                processed_at=None, result=null())  # null(): SQL NULL, as a finished attempt leaves "no result"
        .returning(Event.id, Event.source)
    ).all()
    return sorted(EventRef(*row) for row in rows)
