"""Database engine, sessions, migrations and one-statement committed writes, shared by the web, the workers and the
CLI.

SQLite is the zero-setup default and PostgreSQL the production store; the code paths are the same, with the dialect
differences (upsert statement, autocommit through the driver) kept here, and SQLite's own (which engine may create
its file, pragmas and explicit BEGIN, lock waits) in ingest.sqlite_db.
"""
from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from sqlalchemy import Engine, Executable, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ingest.kept_connections import kept_connections
from ingest.sqlite_db import BUSY_TIMEOUT_SECONDS, WRITES, configure_sqlite, engine_url, lock_wait_at_most

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# libpq's: a server or network path that went silent breaks the connection instead of holding it forever. Keepalives
# find a dead peer while a statement waits for its answer (after 30 + 3 x 10 s; a slow statement still answers the
# probes), tcp_user_timeout one that stopped acknowledging what was sent (30 s).
LIBPQ_DEAD_PEER_OPTIONS = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
                           "tcp_user_timeout": 30_000}
LIBPQ_DRIVERS = ("psycopg", "psycopg2")


def make_engine(database_url: str, *, create_sqlite_file: bool = True, **kwargs) -> Engine:
    """An engine on the database; on SQLite, `create_sqlite_file=False` opens only a file that exists, for the
    commands that must not leave an empty database behind (see ingest.sqlite_db)."""
    url = make_url(database_url)
    # Statement errors go to the log, and their parameters hold request bodies and credentials (Roistat's token).
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(engine_url(url, create_sqlite_file), connect_args={"timeout": BUSY_TIMEOUT_SECONDS},
                               **kwargs)
        configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip per checkout on the ingress hot path. After a database restart each stale
    # pooled connection fails once (the web answers 503 and the provider retries; a task retries) and is replaced.
    kwargs.setdefault("pool_recycle", 1800)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 10)
    if url.get_backend_name() == "postgresql":
        dead_peer = LIBPQ_DEAD_PEER_OPTIONS if url.get_driver_name() in LIBPQ_DRIVERS else {}
        kwargs.setdefault("connect_args", {"connect_timeout": 5, **dead_peer})
    return create_engine(url, **kwargs)


def make_sessions(engine: Engine, bind: Engine | None = None) -> sessionmaker[Session]:
    """Sessions on `engine`, or on `bind` (that engine with execution options); engine_of names `engine` either way."""
    return sessionmaker(bind or engine, expire_on_commit=False, info={"engine": engine})


def engine_of(session: Session) -> Engine:
    """The Engine a session works on, for execute_committed_rows: a read session's bind is that engine with
    execution options, which shares its pool but not its kept connections."""
    return session.info.get("engine") or session.get_bind()


def make_read_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reads that write nothing (a provider's synchronous reply): on PostgreSQL each statement is its
    own transaction, as it is its own snapshot already under READ COMMITTED, which spares a reply the BEGIN and the
    ROLLBACK round trips. SQLite keeps its explicit transactions (switching its driver's isolation level back and
    forth would undo the BEGIN recipe above)."""
    if engine.dialect.name != "postgresql":
        return make_sessions(engine)
    return make_sessions(engine, bind=engine.execution_options(isolation_level="AUTOCOMMIT"))


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception (on SQLite it holds the write
    lock from its start)."""
    with sessions() as session, session.begin():
        session.connection(execution_options={WRITES: True})
        yield session


def dialect_of(engine_or_session) -> str:
    return engine_or_session.get_bind().dialect.name if isinstance(engine_or_session, Session) \
        else engine_or_session.dialect.name


def insert_for(engine_session_or_dialect) -> type:
    """The dialect's INSERT construct, which has on_conflict_do_update/do_nothing."""
    name = engine_session_or_dialect if isinstance(engine_session_or_dialect, str) \
        else dialect_of(engine_session_or_dialect)
    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[name]


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config  # imported here: alembic costs every web worker ~10 MB it never uses

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Bring any database, empty or older, up to `revision`; a SQLite file is created (with its folder) by the
    migration's engine (env.py), the one engine of the service that creates it."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


# sqlite3 reports mistakes in the SQL ("no such table") as OperationalError too; these are the states that pass.
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error",
                       "database or disk is full")


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "not reachable or not usable right now, try again later" (a connection
    refused or broken, a server shutting down, a locked SQLite file, no pooled connection free) rather than a fault
    in the statement."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    if exc.orig is not None and type(exc.orig).__module__.startswith("sqlite3"):
        return any(state in str(exc.orig).lower() for state in _SQLITE_UNAVAILABLE)
    return True


def driver_message(exc: BaseException) -> str:
    """The first line of the driver's own words, without the SQL SQLAlchemy appends (it could hold values)."""
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def execute_committed_rows(engine: Engine, statement: Executable, values: dict, first_only: bool = False,
                           lock_wait: float | None = None) -> list[Sequence]:
    """Run one statement as its own committed transaction; the rows it returned (only the first, `first_only`).
    On SQLite it waits at most `lock_wait` seconds for another writer's lock (None: the busy timeout).

    On PostgreSQL in autocommit mode the statement is its own transaction: the server commits (and with
    synchronous_commit flushes) it before it reports ready, and psycopg returns only after that report, so a row in
    hand is a durable row. One round trip instead of three (BEGIN, INSERT, COMMIT). SQLite takes the explicit
    transaction that this module sets up for it. Where the driver gets the statement itself (goes_through_driver),
    the values must be as the driver takes them (what SQLAlchemy's bind processing would have made of them).
    """
    if goes_through_driver(engine):
        return _execute_through_driver(engine, statement, values, first_only)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            result = connection.execution_options(isolation_level="AUTOCOMMIT").execute(statement, values)
            return _rows(result, first_only)
    with engine.connect() as connection, lock_wait_at_most(connection, lock_wait), connection.begin():
        return _rows(connection.execute(statement, values), first_only)


def goes_through_driver(engine: Engine) -> bool:
    """Whether execute_committed_rows hands the statement to psycopg itself, skipping SQLAlchemy's bind processing."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def _rows(result, first_only: bool) -> list[Sequence]:
    if first_only:
        row = result.first()
        return [] if row is None else [row]
    return list(result.all())


def _execute_through_driver(engine: Engine, statement: Executable, values: dict, first_only: bool
                            ) -> list[Sequence]:
    """The hot paths on psycopg (the ingress INSERT, a message's attempts): a prepared statement on a kept autocommit
    connection (`ingest.kept_connections`), or on the pooled connection past their limit.

    SQLAlchemy's per-execution bookkeeping (execution context, isolation level set and reset, result wrapping) cost
    the request about as much CPU as the driver itself, and none of it does anything for one fixed statement.
    Driver errors come out as SQLAlchemy's, and the connection that raised one is not reused.
    """
    sql, constants = _driver_form(engine, statement)
    dbapi_error = engine.dialect.loaded_dbapi.Error
    kept_ones = kept_connections(engine)
    try:
        kept = kept_ones.take()
    except dbapi_error as exc:  # the pool hands out the driver's own error when it cannot connect
        raise DBAPIError.instance(None, None, exc, dbapi_error, connection_invalidated=True) from exc
    if kept is None:
        return _execute_on_pooled(engine, sql, {**constants, **values}, first_only, dbapi_error)
    try:
        rows = kept.execute(sql, {**constants, **values})
    except BaseException as exc:
        kept_ones.discard(kept)
        if isinstance(exc, dbapi_error):
            # Without the parameters: they hold the request body, and the error goes to the log.
            raise DBAPIError.instance(sql, None, exc, dbapi_error) from exc
        raise
    kept_ones.give_back(kept)
    return rows[:1] if first_only else rows


def _execute_on_pooled(engine: Engine, sql: str, parameters: dict, first_only: bool, dbapi_error: type
                       ) -> list[Sequence]:
    try:
        pooled = engine.raw_connection()
    except dbapi_error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi_error, connection_invalidated=True) from exc
    try:
        driver = pooled.driver_connection
        driver.autocommit = True
        try:
            with driver.cursor() as cursor:
                return _fetch(cursor, sql, parameters, first_only)
        finally:
            driver.autocommit = False
    except dbapi_error as exc:
        pooled.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, dbapi_error) from exc
    finally:
        pooled.close()


def _fetch(cursor, sql: str, parameters: dict, first_only: bool) -> list[Sequence]:
    cursor.execute(sql, parameters, prepare=True)
    if first_only:
        row = cursor.fetchone()
        return [] if row is None else [row]
    return cursor.fetchall()


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


_driver_statements: dict[tuple, tuple[str, dict]] = {}
