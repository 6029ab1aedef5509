"""The one-statement hot paths write on a few kept autocommit connections beside the pool (real PostgreSQL)."""
from __future__ import annotations

import os
import threading
from typing import Iterator

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from ingest.db import make_engine
from ingest.events import store_event
from ingest.kept_connections import kept_connections
from ingest.providers.base import RawRequest
from ingest.schema import Event
from tests.conftest import truncate_postgres
from tests.support.kept import backend_of_next_write, borrowed

REQUEST = RawRequest("POST", "/hooks/generic-main", "", {"Content-Type": "application/json"}, b"{}",
                     "application/json", "127.0.0.1")


@pytest.fixture
def engine(postgres_schema_url) -> Iterator[Engine]:
    truncate_postgres(postgres_schema_url)
    engine = make_engine(postgres_schema_url)
    yield engine
    engine.dispose()


def store(engine: Engine, key: str) -> int:
    return store_event(engine, source="generic-main", provider="generic", dedup_key=key, request=REQUEST).id


def stored_events(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Event)).scalar_one()


@pytest.mark.postgres
def test_consecutive_writes_reuse_one_kept_connection(engine):
    store(engine, "a")
    first = backend_of_next_write(engine)
    store(engine, "b")

    assert backend_of_next_write(engine) == first
    assert stored_events(engine) == 2


@pytest.mark.postgres
def test_a_kept_connection_commits_each_statement_at_once(engine):
    store(engine, "a")

    with borrowed(engine) as kept:
        assert kept.connection.info.transaction_status.name == "IDLE"
    assert stored_events(engine) == 1  # seen from another connection


@pytest.mark.postgres
def test_no_more_are_kept_than_the_pool_size_and_the_rest_write_through_the_pool(engine):
    kept_ones = kept_connections(engine)
    taken = [kept_ones.take() for _ in range(kept_ones.limit)]

    assert kept_ones.take() is None
    assert store(engine, "beyond-the-limit") > 0  # through a pooled connection
    for kept in taken:
        kept_ones.give_back(kept)


@pytest.mark.postgres
def test_concurrent_writers_all_succeed_within_the_limit(engine):
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            for round_number in range(5):
                store(engine, f"t{number}-{round_number}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert stored_events(engine) == 60
    assert kept_connections(engine)._count <= kept_connections(engine).limit


@pytest.mark.postgres
def test_a_connection_that_failed_is_not_used_again(engine, postgres_schema_url):
    store(engine, "a")
    broken = backend_of_next_write(engine)
    admin = create_engine(postgres_schema_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": broken})
    admin.dispose()

    with pytest.raises(DBAPIError):
        store(engine, "b")  # the web answers 503 here, and the provider retries

    store(engine, "b")
    assert backend_of_next_write(engine) != broken
    assert stored_events(engine) == 2


@pytest.mark.postgres
def test_disposing_the_engine_closes_its_kept_connections(engine):
    store(engine, "a")
    with borrowed(engine) as kept:
        pass

    engine.dispose()

    assert kept.connection.closed
    store(engine, "b")  # a new one after the dispose
    assert stored_events(engine) == 2


@pytest.mark.postgres
def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_working(engine):
    store(engine, "a")
    parent_backend = backend_of_next_write(engine)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: one write on a connection of its own, then report its backend
        try:
            store(engine, "from-the-child")
            os.write(write, str(backend_of_next_write(engine)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    child_backend = int(os.read(read, 64) or b"0")
    os.close(read)

    assert child_backend not in (0, parent_backend)
    store(engine, "b")  # the parent's connection still works
    assert backend_of_next_write(engine) == parent_backend
    assert stored_events(engine) == 3
