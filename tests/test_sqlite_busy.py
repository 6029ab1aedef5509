"""A webhook on SQLite while another connection holds the write lock (a CLI command, a worker's transaction).

The provider gets the documented 503 `database_unavailable` with Retry-After after INGRESS_LOCK_WAIT_SECONDS, and
retries; it used to wait out the 30 s busy timeout, past the point where providers give up (Jivo after ~3 s). Every
other write keeps the long busy timeout. PostgreSQL has no such lock: its behaviour is test_ingress_status's.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy import event, func, select, text

from ingest.db import transaction
from ingest.events import INGRESS_LOCK_WAIT_SECONDS
from ingest.runtime import Runtime
from ingest.schema import Event
from ingest.sqlite_db import BUSY_TIMEOUT_SECONDS
from tests.conftest import make_client

BODY = b'{"email": "a@example.com"}'
# Generous: the suite runs on a noisy 2-core machine. Still under the busy timeout the answer used to wait for.
SLACK_SECONDS = 10


@pytest.fixture
def runtime(sqlite_runtime) -> Runtime:
    return sqlite_runtime


def database_file(runtime: Runtime) -> str:
    return runtime.settings.database_url.removeprefix("sqlite:///")


@contextmanager
def write_lock_held(runtime: Runtime) -> Iterator[sqlite3.Connection]:
    """Another connection holds the write lock, as `python -c "…BEGIN EXCLUSIVE…"` or a long CLI command does."""
    holder = sqlite3.connect(database_file(runtime), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield holder
    finally:
        holder.close()


def post(runtime: Runtime, generic_headers):
    return make_client(runtime).post("/hooks/generic-main", data=BODY, headers=generic_headers)


def count_events(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count(Event.id)))


def busy_timeout_of_a_pooled_connection(runtime: Runtime) -> int:
    with runtime.engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one()


def test_a_webhook_while_the_database_is_locked_is_503_database_unavailable_with_retry_after(runtime,
                                                                                              generic_headers):
    with write_lock_held(runtime):
        started = time.monotonic()
        response = post(runtime, generic_headers)
        waited = time.monotonic() - started

    assert response.status_code == 503
    assert response.json == {"error": "database_unavailable", "message": "the request could not be stored; retry later"}
    assert response.headers["Retry-After"].isdigit()
    assert waited < INGRESS_LOCK_WAIT_SECONDS + SLACK_SECONDS < BUSY_TIMEOUT_SECONDS


def test_a_webhook_refused_for_the_lock_stores_nothing(runtime, generic_headers):
    with write_lock_held(runtime):
        post(runtime, generic_headers)

    assert count_events(runtime) == 0


def release_once(holder: sqlite3.Connection, insert_started: threading.Event) -> None:
    assert insert_started.wait(30)
    time.sleep(0.1)  # the INSERT is waiting on the lock by now
    holder.rollback()


def test_a_webhook_waits_for_a_lock_released_within_the_ingress_wait(runtime, generic_headers):
    """The lock is let go a moment after the INSERT started waiting on it: ordinary contention, not an outage."""
    insert_started = threading.Event()

    def on_statement(_connection, _cursor, statement, *_):
        if statement.startswith("INSERT INTO events"):
            insert_started.set()

    event.listen(runtime.engine, "before_cursor_execute", on_statement)
    with write_lock_held(runtime) as holder:
        releaser = threading.Thread(target=release_once, args=(holder, insert_started))
        releaser.start()
        response = post(runtime, generic_headers)
        releaser.join()

    assert response.status_code == 200
    assert count_events(runtime) == 1


def test_the_short_wait_does_not_stay_with_the_connection_it_returns_to_the_pool(runtime, generic_headers):
    with write_lock_held(runtime):
        post(runtime, generic_headers)

    assert runtime.engine.pool.checkedin() == 1  # the one connection the webhook used
    assert busy_timeout_of_a_pooled_connection(runtime) == BUSY_TIMEOUT_SECONDS * 1000


def test_other_writes_still_wait_out_a_lock_held_longer_than_the_ingress_wait(runtime, generic_headers):
    """A worker's or a command's transaction: it has no provider waiting on it, and giving up would cost a retry."""
    post(runtime, generic_headers)
    with write_lock_held(runtime) as holder:
        releaser = threading.Timer(INGRESS_LOCK_WAIT_SECONDS + 1, holder.rollback)
        releaser.start()
        with transaction(runtime.sessions) as session:
            session.execute(text("UPDATE events SET attempts = attempts + 1"))
        releaser.join()

    with runtime.sessions() as session:
        assert session.scalar(select(Event.attempts)) == 1
