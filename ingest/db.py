"""Database engine, sessions and migrations, shared by the web, the workers and the CLI.

SQLite is the zero-setup default and PostgreSQL the production store; the code paths are the same, with the dialect
differences (upsert statement, SQLite pragmas and explicit BEGIN) kept here.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(database_url: str, **kwargs) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip per checkout on the ingress hot path. After a database restart each stale
    # pooled connection fails once (the web answers 503 and the provider retries; a task retries) and is replaced.
    kwargs.setdefault("pool_recycle", 1800)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 10)
    if url.get_backend_name() == "postgresql":
        kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, a busy timeout for writers, and transactions SQLAlchemy really controls.

    pysqlite by default opens a transaction only before a write, so a read-then-write could see stale rows; the
    SQLAlchemy-documented recipe below turns that off and emits BEGIN itself.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN")


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception."""
    with sessions() as session, session.begin():
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
    """Bring any database, empty or older, up to `revision`."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
