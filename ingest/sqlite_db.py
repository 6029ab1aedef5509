"""The SQLite specifics of ingest.db: which file a URL names and whether an engine may create it, the pragmas of
every connection, and how long a write waits for another writer's lock.

Only `migrate` (and `dev`, through it) creates the database file. Everything else opens the file that is there
(SQLite's `mode=rw`): a command run in another directory once created an empty database beside the user's real one
and then advised `crm-ingest migrate`, which made that empty one look like the store.
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url

# Execution option of the connections `ingest.db.transaction` works on: their transactions will write.
WRITES = "crm_ingest_writes"
# How long a write waits for another writer's lock unless told otherwise (see lock_wait_at_most).
BUSY_TIMEOUT_SECONDS = 30
WAL_SWITCH_TRIES = 100


def sqlite_file(database_url: str | URL) -> Path | None:
    """The file a SQLite URL names, as written (relative to the current directory, or absolute); None for anything
    else: another database, an in-memory one, or a URL that is an SQLite URI already (`uri=true`: its own say)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or "uri" in url.query:
        return None
    return Path(url.database)


def engine_url(database_url: str | URL, create: bool) -> URL:
    """The URL to build an engine on: one that creates a missing file (making its folder), or one that only opens a
    file that exists (`mode=rw`: a missing one is "unable to open database file", and nothing is created)."""
    url = make_url(database_url)
    path = sqlite_file(url)
    if path is None:
        return url
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        return url
    # As SQLAlchemy does for a plain path: absolute as of now, whatever the process's directory becomes later.
    return url.set(database=f"file:{quote(os.path.abspath(path))}").update_query_dict({"mode": "rw", "uri": "true"})


def sqlite_busy(exc: BaseException) -> bool:
    """Whether a database error is SQLite's "database is locked": another connection holds the write lock."""
    code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)  # extended codes keep it in the low byte
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


@contextmanager
def lock_wait_at_most(connection: Connection, seconds: float | None) -> Iterator[None]:
    """Within the block, a statement on this SQLite connection waits at most `seconds` for another writer's lock
    (then fails with "database is locked"); the connection's own busy timeout again afterwards, as it goes back to
    the pool. None changes nothing."""
    if seconds is None:
        yield
        return
    driver = connection.connection.driver_connection  # a PRAGMA through SQLAlchemy would begin a transaction
    (before,) = driver.execute("PRAGMA busy_timeout").fetchone()
    driver.execute(f"PRAGMA busy_timeout={min(before, round(seconds * 1000))}")
    try:
        yield
    finally:
        if not connection.invalidated:
            driver.execute(f"PRAGMA busy_timeout={before}")


def _journal_in_wal(cursor) -> None:
    """`PRAGMA journal_mode=WAL`, again while another connection holds the lock it needs. Switching a new database's
    journal needs an exclusive lock, and SQLite answers "database is locked" at once rather than wait the busy
    timeout when another connection (a second `migrate` started at the same moment) is doing the same."""
    for attempt in range(1, WAL_SWITCH_TRIES + 1):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_TRIES:
                raise
            time.sleep(0.05)


def configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, a busy timeout for writers, and transactions SQLAlchemy really controls.

    pysqlite by default opens a transaction only before a write, so a read-then-write could see stale rows; the
    SQLAlchemy-documented recipe below turns that off and emits BEGIN itself.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        _journal_in_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A transaction that reads and then writes takes the write lock at BEGIN: asking for it after a read while
        # another connection holds it fails at once with "database is locked" (SQLite's busy timeout does not wait
        # there; waiting could not help a snapshot that the other writer is about to make stale).
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get(WRITES) else "BEGIN")
