"""Sessions for reads that write nothing (a provider's synchronous reply): no transaction round trips on PostgreSQL,
the same sessions as everything else on SQLite."""
from __future__ import annotations

from typing import Iterator

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import select, text

from ingest.events import store_event
from ingest.providers.base import RawRequest
from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import truncate_postgres


@pytest.fixture
def pg_runtime(postgres_schema_url, make_settings) -> Iterator[Runtime]:
    truncate_postgres(postgres_schema_url)
    runtime = Runtime(make_settings(postgres_schema_url))
    yield runtime
    runtime.close()


def transaction_status(session) -> TransactionStatus:
    return session.connection().connection.driver_connection.info.transaction_status


@pytest.mark.postgres
def test_a_read_session_on_postgresql_runs_each_statement_outside_a_transaction(pg_runtime):
    with pg_runtime.read_sessions() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1
        assert transaction_status(session) == TransactionStatus.IDLE


@pytest.mark.postgres
def test_a_writing_session_still_runs_in_a_transaction_after_a_read_session_used_its_connection(pg_runtime):
    with pg_runtime.read_sessions() as session:
        session.execute(text("SELECT 1"))
    with pg_runtime.sessions() as session:
        session.execute(text("SELECT 1"))
        assert transaction_status(session) == TransactionStatus.INTRANS


def test_a_read_session_on_sqlite_is_an_ordinary_session(sqlite_runtime):
    assert sqlite_runtime.read_sessions.kw["bind"] is sqlite_runtime.engine


def test_a_read_session_sees_what_was_committed_just_before(runtime):
    request = RawRequest("POST", "/hooks/probe", "", {}, b"{}", "application/json")
    stored = store_event(runtime.engine, source="probe", provider="generic", dedup_key="probe-1", request=request)

    with runtime.read_sessions() as session:
        assert session.execute(select(Event.source).where(Event.id == stored.id)).scalar_one() == "probe"
