"""Webhook requests stored at the same moment share one statement and one commit, and each still gets its own event
(real SQLite and PostgreSQL; ingest.group_commit is the mechanism)."""
from __future__ import annotations

import os
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine, make_url, select, text
from sqlalchemy.exc import DBAPIError

from ingest.db import make_engine
from ingest.events import StoredEvent, event_writer, store_event
from ingest.providers.base import RawRequest
from ingest.schema import Event
from tests.support.waiting import wait_until

SOURCE = "generic-main"


def request(number: int, path: str = "/hooks/generic-main") -> RawRequest:
    return RawRequest("POST", path, "", {"Content-Type": "application/json", "X-Number": str(number)},
                      b'{"n": %d}' % number, "application/json", "127.0.0.1")


def store(engine: Engine, key: str, number: int = 0, path: str = "/hooks/generic-main") -> StoredEvent:
    return store_event(engine, source=SOURCE, provider="generic", dedup_key=key, request=request(number, path))


@pytest.fixture
def engine(database_url) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@contextmanager
def writes_held(engine: Engine) -> Iterator[None]:
    """Another connection holds the database's write lock: every INSERT into events waits until the block ends."""
    url = make_url(engine.url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("COMMIT")
            holder.close()
        return
    other = create_engine(url)
    try:
        with other.begin() as connection:
            connection.execute(text("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"))
            yield
    finally:
        other.dispose()


def store_together(engine: Engine, first_key: str, keys: list[str]) -> list[StoredEvent]:
    """Store `first_key` while writes are held, queue `keys` behind it, then let them all through. The events,
    first one first."""
    writer = event_writer(engine)
    with ThreadPoolExecutor(max_workers=len(keys) + 1) as pool:
        with writes_held(engine):
            futures = [pool.submit(store, engine, first_key, 0)]
            wait_until(lambda: writer.queued() == 1, what="the first write under way")
            futures += [pool.submit(store, engine, key, number) for number, key in enumerate(keys, start=1)]
            wait_until(lambda: writer.queued() == len(keys) + 1, what="the other writes queued")
        return [future.result(timeout=30) for future in futures]


def batch_sample(name: str) -> float:
    return REGISTRY.get_sample_value(f"crm_ingest_store_batch_events_{name}") or 0.0


def stored_rows(engine: Engine) -> dict[str, tuple[int, int, str]]:
    with engine.connect() as connection:
        rows = connection.execute(select(Event.dedup_key, Event.id, Event.duplicate_count, Event.headers)).all()
    return {key: (event_id, duplicates, headers["X-Number"]) for key, event_id, duplicates, headers in rows}


def test_requests_queued_behind_a_write_are_stored_by_one_statement(engine):
    batches, events = batch_sample("count"), batch_sample("sum")

    store_together(engine, "first", ["b", "c", "d"])

    assert batch_sample("count") - batches == 2
    assert batch_sample("sum") - events == 4


def test_each_request_of_a_batch_gets_its_own_event(engine):
    stored = store_together(engine, "first", ["b", "c", "d"])

    rows = stored_rows(engine)
    assert [event.id for event in stored] == [rows[key][0] for key in ("first", "b", "c", "d")]
    assert [rows[key][2] for key in ("first", "b", "c", "d")] == ["0", "1", "2", "3"]  # each its own request
    assert not any(event.is_duplicate for event in stored)


def test_a_redelivery_in_a_batch_is_counted_on_the_first_event(engine):
    original = store(engine, "seen")

    stored = store_together(engine, "first", ["new", "seen"])

    redelivery = stored[2]
    assert redelivery.id == original.id and redelivery.is_duplicate and redelivery.duplicate_count == 1
    assert stored_rows(engine)["seen"][:2] == (original.id, 1)
    assert not stored[1].is_duplicate


def test_two_deliveries_of_one_request_in_the_queue_store_one_event(engine):
    stored = store_together(engine, "first", ["twice", "twice"])

    assert stored[1].id == stored[2].id
    assert sorted(event.duplicate_count for event in stored[1:]) == [0, 1]
    assert stored_rows(engine)["twice"][1] == 1


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_commits_in_one_transaction_on_postgresql(engine):
    store_together(engine, "first", ["b", "c", "d"])

    with engine.connect() as connection:
        transactions = dict(connection.execute(text("SELECT dedup_key, xmin::text FROM events")).all())
    assert transactions["b"] == transactions["c"] == transactions["d"] != transactions["first"]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_request_the_database_rejects_fails_alone_and_its_batch_is_stored(engine):
    writer = event_writer(engine)
    with ThreadPoolExecutor(max_workers=4) as pool:
        with writes_held(engine):
            first = pool.submit(store, engine, "first")
            wait_until(lambda: writer.queued() == 1, what="the first write under way")
            good = [pool.submit(store, engine, key, number) for number, key in enumerate(["b", "c"], start=1)]
            bad = pool.submit(store, engine, "bad", 9, "/hooks/generic-main\x00")  # PostgreSQL text takes no NUL
            wait_until(lambda: writer.queued() == 4, what="the other writes queued")

        with pytest.raises(DBAPIError, match="NUL"):
            bad.result(timeout=30)
        assert first.result(timeout=30) and all(future.result(timeout=30) for future in good)
    assert sorted(stored_rows(engine)) == ["b", "c", "first"]


def test_a_forked_child_does_not_wait_behind_its_parents_queued_writes(engine):
    parent_writer = event_writer(engine)
    parent_writer._queue.append(object())  # a write the parent had queued when it forked: no thread of the child's
    try:
        pid = os.fork()
        if pid == 0:  # the child: store, then report by exit status
            signal.alarm(20)
            engine.dispose(close=False)  # the parent's pooled connections are not the child's
            try:
                stored = store(engine, "from-the-child")
                os._exit(0 if stored.id and event_writer(engine) is not parent_writer else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
    finally:
        parent_writer._queue.pop()
    assert os.waitstatus_to_exitcode(status) == 0
    assert "from-the-child" in stored_rows(engine)
