"""Concurrent ingress writes share one statement and one commit on PostgreSQL, with the outcomes of writing alone.

A batch is made on purpose, never by timing luck: the first request's leader is held inside its flush (the
committer's `on_flush` hook) until the other requests are queued behind it; they then go in as the next batch.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DataError, OperationalError

from ingest.db import make_engine
from ingest.events import StoredEvent, event_committer, store_event
from ingest.providers.base import RawRequest
from ingest.schema import Event
from tests.conftest import truncate_postgres
from tests.support.waiting import wait_until

HUNG = 30  # seconds: only bounds a test that would otherwise hang, asserts nothing about speed


@pytest.fixture
def engine(postgres_schema_url) -> Iterator[Engine]:
    truncate_postgres(postgres_schema_url)
    engine = make_engine(postgres_schema_url)
    yield engine
    engine.dispose()


@pytest.fixture
def unreachable_engine() -> Iterator[Engine]:
    engine = make_engine("postgresql+psycopg://127.0.0.1:1/none")
    yield engine
    engine.dispose()


def raw_request(**fields) -> RawRequest:
    return RawRequest(**{"method": "POST", "path": "/hooks/generic-main", "query_string": "", "headers": {},
                         "body": b"{}", "content_type": "application/json", "remote_addr": "127.0.0.1", **fields})


def store(engine: Engine, dedup_key: str, **request_fields) -> StoredEvent:
    return store_event(engine, source="generic-main", provider="generic", dedup_key=dedup_key,
                       request=raw_request(**request_fields))


class Flushes:
    """The committer's `on_flush` hook for a test: records each flush (the leader's thread, the batch size), can hold
    the first leader inside its flush until released, and can break the leader of a given flush."""

    def __init__(self, engine: Engine, hold_first: bool = False, break_flush: int | None = None):
        self.committer = event_committer(engine)
        self.seen: list[tuple[threading.Thread, int]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.break_flush = break_flush
        self.committer.on_flush = self

    def __call__(self, size: int) -> None:
        self.seen.append((threading.current_thread(), size))
        self.first_started.set()
        self.release.wait(HUNG)
        if len(self.seen) == self.break_flush:
            raise RuntimeError("the leader broke")

    @property
    def sizes(self) -> list[int]:
        return [size for _, size in self.seen]


@dataclass
class Run:
    flushes: Flushes
    threads: list[threading.Thread]
    outcomes: list[object]  # each call's result, or the exception it raised


def batch_after_a_held_one(engine: Engine, first: Callable[[], object], batch: list[Callable[[], object]],
                           break_flush: int | None = None) -> Run:
    """Run `first` on a thread and hold its flush until every call of `batch`, each on its own thread, is queued
    behind it; then release them: the batch goes in as the next flush."""
    flushes = Flushes(engine, hold_first=True, break_flush=break_flush)
    calls = [first, *batch]
    outcomes: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            outcomes[index] = calls[index]()
        except BaseException as exc:
            outcomes[index] = exc

    # daemons: a caller left waiting must fail the test, not keep pytest from exiting
    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(len(calls))]
    threads[0].start()
    assert flushes.first_started.wait(HUNG)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: flushes.committer.queued == len(batch), timeout=HUNG, what="the batch to queue up")
    flushes.release.set()
    deadline = time.monotonic() + HUNG
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a caller was left waiting"
    return Run(flushes, threads, outcomes)


def events(engine: Engine) -> list[Event]:
    with engine.connect() as connection:
        return list(connection.execute(select(Event.__table__).order_by(Event.id)))


def test_concurrent_distinct_requests_share_one_statement_and_each_gets_its_own_event(engine):
    keys = [f"distinct-{n}" for n in range(6)]
    run = batch_after_a_held_one(engine, lambda: store(engine, keys[0]),
                                 [lambda key=key: store(engine, key) for key in keys[1:]])
    assert run.flushes.sizes == [1, 5]
    assert run.flushes.committer.statements == 2
    assert not any(outcome.is_duplicate for outcome in run.outcomes)
    key_of_event = {event.id: event.dedup_key for event in events(engine)}
    assert [key_of_event[outcome.id] for outcome in run.outcomes] == keys


def test_a_lone_request_is_written_at_once_by_its_own_thread(engine):
    flushes = Flushes(engine)
    stored = store(engine, "alone")
    assert flushes.seen == [(threading.current_thread(), 1)]
    assert [event.id for event in events(engine)] == [stored.id]


def test_a_leader_writes_one_batch_and_hands_the_next_to_a_waiting_request(engine):
    run = batch_after_a_held_one(engine, lambda: store(engine, "first"),
                                 [lambda n=n: store(engine, f"next-{n}") for n in range(3)])
    (first_leader, _), (second_leader, _) = run.flushes.seen
    assert first_leader is run.threads[0]
    assert second_leader in run.threads[1:]


def test_the_same_key_twice_in_one_batch_is_one_event_with_one_redelivery(engine):
    run = batch_after_a_held_one(engine, lambda: store(engine, "other"),
                                 [lambda: store(engine, "twice"), lambda: store(engine, "twice")])
    copies = run.outcomes[1:]
    assert run.flushes.sizes == [1, 2]
    assert run.flushes.committer.statements == 2  # the copies went in together, not row by row after a refusal
    assert len({copy.id for copy in copies}) == 1
    assert sorted(copy.is_duplicate for copy in copies) == [False, True]
    assert sorted(copy.duplicate_count for copy in copies) == [0, 1]
    (event,) = [event for event in events(engine) if event.dedup_key == "twice"]
    assert event.duplicate_count == 1
    assert event.last_duplicate_at is not None


def test_copies_of_a_stored_event_in_one_batch_each_count_as_a_redelivery(engine):
    original = store(engine, "again")
    run = batch_after_a_held_one(engine, lambda: store(engine, "other"),
                                 [lambda: store(engine, "again") for _ in range(3)])
    copies = run.outcomes[1:]
    assert run.flushes.sizes == [1, 3]
    assert run.flushes.committer.statements == 3  # the original, then one each for the two batches
    assert {copy.id for copy in copies} == {original.id}
    assert all(copy.is_duplicate for copy in copies)
    assert sorted(copy.duplicate_count for copy in copies) == [1, 2, 3]
    assert [event.duplicate_count for event in events(engine) if event.dedup_key == "again"] == [3]


@pytest.mark.parametrize("rejected_field", [
    {"remote_addr": "x" * 65},  # PostgreSQL refuses it: longer than the column's varchar(64)
    {"path": "/hooks/\x00"},    # psycopg refuses it: PostgreSQL text cannot hold a NUL character
], ids=["too-long-for-the-column", "nul-character"])
def test_a_row_the_database_rejects_fails_only_its_own_request(engine, rejected_field):
    run = batch_after_a_held_one(engine, lambda: store(engine, "first"), [
        lambda: store(engine, "good-1"), lambda: store(engine, "bad", **rejected_field),
        lambda: store(engine, "good-2")])
    first, good_1, bad, good_2 = run.outcomes
    assert run.flushes.sizes == [1, 3]
    assert isinstance(bad, DataError)
    assert all(isinstance(outcome, StoredEvent) for outcome in (first, good_1, good_2))
    assert sorted(event.dedup_key for event in events(engine)) == ["first", "good-1", "good-2"]


def test_with_the_database_unreachable_every_caller_of_a_batch_gets_the_error(unreachable_engine):
    run = batch_after_a_held_one(unreachable_engine, lambda: store(unreachable_engine, "first"),
                                 [lambda n=n: store(unreachable_engine, f"key-{n}") for n in range(4)])
    assert run.flushes.sizes == [1, 4]
    assert all(isinstance(outcome, OperationalError) for outcome in run.outcomes)
    assert run.flushes.committer.statements == 2  # not retried row by row: that cannot help


def test_an_error_inside_a_leader_reaches_every_caller_of_its_batch_and_the_next_request_is_written(engine):
    run = batch_after_a_held_one(engine, lambda: store(engine, "first"),
                                 [lambda n=n: store(engine, f"key-{n}") for n in range(3)], break_flush=2)
    assert isinstance(run.outcomes[0], StoredEvent)
    assert all(isinstance(outcome, RuntimeError) for outcome in run.outcomes[1:])
    assert not store(engine, "afterwards").is_duplicate
