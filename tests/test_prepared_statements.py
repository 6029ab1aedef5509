"""A kept connection's statements: prepared once, run through libpq, values sent and read as a cursor would."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

import psycopg
import pytest
from psycopg.types.json import Json

from ingest.prepared_statements import PreparedStatements, numbered_form
from tests.conftest import PG_SERVER_URL, require_service

ROUND_TRIP = "SELECT %(text)s::text, %(data)s::bytea, %(doc)s::json, %(at)s::timestamptz, %(count)s::int8"


@pytest.fixture
def statements() -> Iterator[PreparedStatements]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with psycopg.connect(PG_SERVER_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE TEMPORARY TABLE marks (key text PRIMARY KEY, seen int NOT NULL)")
        yield PreparedStatements(conn)


def test_placeholders_become_numbered_in_order_of_first_use():
    assert numbered_form("SELECT %(a)s, %(b)s, %(a)s, 100 %% 7") == (b"SELECT $1, $2, $1, 100 % 7", ["a", "b"])


@pytest.mark.postgres
def test_values_come_back_as_a_cursor_reads_them(statements):
    at = datetime(2026, 11, 21, 23, 59, 1, 123456, tzinfo=timezone.utc)
    values = {"text": "Привет ✓", "data": bytes(range(256)), "doc": Json({"k": ["v", 1]}), "at": at,
              "count": 2**40}
    with psycopg.connect(statements.connection.info.dsn, autocommit=True) as other:
        expected = other.execute(ROUND_TRIP, values).fetchall()
    assert statements.execute(ROUND_TRIP, values) == expected
    assert expected == [("Привет ✓", bytes(range(256)), {"k": ["v", 1]}, at, 2**40)]


@pytest.mark.postgres
def test_a_statement_is_prepared_once_and_reused(statements):
    for number in range(3):
        statements.execute("INSERT INTO marks VALUES (%(key)s, %(seen)s)", {"key": f"k{number}", "seen": number})
    assert len(statements.prepared) == 1
    assert statements.execute("SELECT count(*) FROM marks", {}) == [(3,)]


@pytest.mark.postgres
def test_a_null_parameter_and_a_typed_one_each_get_their_own_prepared_form(statements):
    sql = "SELECT %(at)s::timestamptz IS NULL"
    assert statements.execute(sql, {"at": None}) == [(True,)]
    assert statements.execute(sql, {"at": datetime.now(timezone.utc)}) == [(False,)]
    assert statements.execute(sql, {"at": None}) == [(True,)]


@pytest.mark.postgres
def test_a_refused_statement_raises_the_drivers_own_error(statements):
    insert = "INSERT INTO marks VALUES (%(key)s, %(seen)s)"
    statements.execute(insert, {"key": "same", "seen": 1})
    with pytest.raises(psycopg.errors.UniqueViolation):
        statements.execute(insert, {"key": "same", "seen": 2})
    assert statements.execute("SELECT seen FROM marks", {}) == [(1,)]


@pytest.mark.postgres
def test_each_statement_is_committed_when_it_returns(statements):
    statements.execute("INSERT INTO marks VALUES (%(key)s, %(seen)s)", {"key": "durable", "seen": 1})
    assert statements.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
