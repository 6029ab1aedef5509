"""Database reads for `/readyz` and `/metrics` that a server which stopped answering cannot hold, and the schema check.

A pooled connection may be one a frozen server holds (or a network path that went silent while something on the way
still acknowledges the bytes, so that no TCP timeout fires): a read on it waited forever, and so did the probe, the
scrape and every web thread that asked after them. These reads run on a connection of their own, opened for the
read (connect_timeout), in a thread given CHECK_SECONDS; after that the caller gets CheckTimedOut, and the
connection's socket is shut down so that the thread's wait ends too.
"""
from __future__ import annotations

import os
import re
import socket
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.pool import NullPool

from ingest.db import MIGRATIONS_DIR, make_engine
from ingest.sqlite_db import sqlite_file

# Below the database's connect_timeout (5 s), so that a server that stopped answering reads as "timeout".
CHECK_SECONDS = 3.0
MIGRATE_HINT = "run crm-ingest migrate"
T = TypeVar("T")
_check_engines: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()


class CheckTimedOut(Exception):
    pass


def read_within(engine: Engine, read: Callable[[Connection], T], timeout: float = CHECK_SECONDS) -> T:
    """`read(connection)` on a fresh connection to the engine's database; CheckTimedOut after `timeout` seconds."""
    attempt = _Attempt(_check_engine(engine), read)
    thread = threading.Thread(target=attempt.run, name="crm-ingest-db-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        attempt.abandon()
        raise CheckTimedOut(f"no answer within {timeout:g} s")
    return attempt.outcome()


def _check_engine(engine: Engine) -> Engine:
    """The engine's database without a pool; SQLite's own engine (a local file: nothing on the way goes silent)."""
    if engine.dialect.name == "sqlite":
        return engine
    check = _check_engines.get(engine)
    if check is None:
        check = _check_engines[engine] = make_engine(engine.url, poolclass=NullPool)
    return check


class _Attempt:
    """One read in its thread, and a way to end its wait from outside."""

    def __init__(self, engine: Engine, read: Callable[[Connection], T]):
        self.engine, self.read = engine, read
        self._lock = threading.Lock()
        self._driver = None  # the DBAPI connection while the read runs, else None
        self._result: T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.engine.connect() as connection:
                with self._lock:
                    self._driver = connection.connection.driver_connection
                try:
                    self._result = self.read(connection)
                finally:
                    with self._lock:  # the socket may close from here on: abandon() must not touch its number
                        self._driver = None
        except BaseException as exc:  # handed to the caller, in its thread
            self._error = exc

    def abandon(self) -> None:
        with self._lock:
            if self._driver is not None:
                _shut_down(self._driver)

    def outcome(self) -> T:
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


def _shut_down(driver) -> None:
    """Shut the driver's socket down (not close it: the number stays the driver's), which ends a wait on it."""
    try:
        fileno = driver.pgconn.socket if hasattr(driver, "pgconn") else driver.fileno()
        with socket.socket(fileno=os.dup(fileno)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # no socket (already lost, or a driver without one): nothing waits on it
        pass


def schema_problem(connection: Connection) -> str | None:
    """Why the database's schema does not fit this code (never migrated, or behind), or None.

    A revision this code does not know is taken as ahead: a newer version migrated the database during a rolling
    deploy, and migrations add before they remove, so this version still works on it."""
    heads, known = code_revisions()
    current: set[str] = set()
    if inspect(connection).has_table("alembic_version"):
        current = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    if current == heads or current - known:
        return None
    return f"schema at {', '.join(sorted(current)) or 'none'}, this version needs {', '.join(sorted(heads))}: " \
           f"{MIGRATE_HINT}"


_REVISION = re.compile(r"^revision\b[^=\n]*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


@lru_cache(maxsize=None)
def code_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(heads, all revisions) of the migrations shipped with this code, read once per process from their files:
    alembic's own reader would cost each web worker ~10 MB of imports."""
    revisions: set[str] = set()
    replaced: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision:
            revisions.add(revision.group(1))
        if down:
            replaced.update(_QUOTED.findall(down.group(1)))
    return frozenset(revisions - replaced), frozenset(revisions)


def missing_sqlite_database(database_url: str, config_file: Path, config_named: bool) -> str | None:
    """What a person needs to know when the SQLite database the configuration names is not there; None when it is,
    or when the store is not a SQLite file. `config_named`: CRM_INGEST_CONFIG chose `config_file`.

    Relative paths are the current directory's, also when the configuration file lives elsewhere: a command run in
    another directory finds no database there, which must not read as a store to create."""
    path = sqlite_file(database_url)
    if path is None or path.exists():
        return None
    create = "or run `crm-ingest migrate` to create a new one"
    if path.is_absolute():
        return f"no database at {path}: check database_url, {create}"
    where = f"no database at {path.absolute()} (relative to the current directory {Path.cwd()})"
    if config_file.exists():
        return f"{where}; relative paths are taken from the current directory, not from the folder of " \
               f"{config_file.absolute()}: run from the directory that holds {path}, write an absolute path in " \
               f"database_url, {create}"
    missing_config = f"no config file at {config_file.absolute()}" if config_named \
        else f"no {config_file} here"
    return f"{where}; {missing_config} either: run from the directory where `crm-ingest dev` wrote it, set " \
           f"CRM_INGEST_CONFIG, {create}"
