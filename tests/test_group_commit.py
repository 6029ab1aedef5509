"""Group commit: threads that write at the same moment share one write, and each gets its own result or error.

The combinator is plain Python; its writes here are a recording function. The event store's use of it, against real
databases, is in test_event_batches.py.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ingest.group_commit import GroupCommit
from tests.support.waiting import wait_until

WAIT_SECONDS = 10


class GatedWrites:
    """Records every batch; the first one blocks until `open_gate()`, so that others can queue up behind it."""

    def __init__(self, fail_on: set[str] = frozenset()):
        self.batches: list[list[str]] = []
        self.first_started = threading.Event()
        self.gate = threading.Event()
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def __call__(self, rows: list[str]) -> list[str]:
        with self._lock:
            self.batches.append(list(rows))
            first = len(self.batches) == 1
        if first:
            self.first_started.set()
            assert self.gate.wait(WAIT_SECONDS)
        if self.fail_on & set(rows):
            raise ValueError(f"cannot write {sorted(self.fail_on & set(rows))}")
        return [f"stored {row}" for row in rows]

    def open_gate(self) -> None:
        self.gate.set()


def queue_behind_first(group: GroupCommit, writes: GatedWrites, first: str, others: list[tuple[str, str]]):
    """Submit `first`, wait until its write is under way, submit the others, wait until they queue, open the gate.
    The futures of all submissions, first one first."""
    pool = ThreadPoolExecutor(max_workers=len(others) + 1)
    futures = [pool.submit(group.submit, first, first)]
    assert writes.first_started.wait(WAIT_SECONDS)
    futures += [pool.submit(group.submit, key, row) for key, row in others]
    wait_until(lambda: group.queued() == len(others) + 1, WAIT_SECONDS, 0.01, "the rows queued up")
    writes.open_gate()
    pool.shutdown(wait=True)
    return futures


def test_a_lone_row_is_written_at_once_in_a_batch_of_its_own():
    writes = GatedWrites()
    writes.open_gate()
    group = GroupCommit(writes)

    assert group.submit("a", "a") == "stored a"
    assert writes.batches == [["a"]]


def test_rows_submitted_during_a_write_share_the_next_one():
    writes = GatedWrites()
    group = GroupCommit(writes)

    queue_behind_first(group, writes, "a", [("b", "b"), ("c", "c"), ("d", "d")])

    assert writes.batches[0] == ["a"]
    assert sorted(writes.batches[1]) == ["b", "c", "d"]
    assert len(writes.batches) == 2


def test_each_submitter_gets_the_result_of_its_own_row():
    writes = GatedWrites()
    group = GroupCommit(writes)

    futures = queue_behind_first(group, writes, "a", [("b", "b"), ("c", "c")])

    assert [future.result() for future in futures] == ["stored a", "stored b", "stored c"]


def test_a_second_row_with_a_key_already_in_the_batch_waits_for_the_next_write():
    writes = GatedWrites()
    group = GroupCommit(writes)

    queue_behind_first(group, writes, "a", [("b", "b-first"), ("b", "b-again")])

    assert writes.batches[0] == ["a"]
    assert sorted(writes.batches[1:]) == [["b-again"], ["b-first"]]


def test_a_batch_holds_at_most_max_batch_rows():
    writes = GatedWrites()
    group = GroupCommit(writes, max_batch=2)

    queue_behind_first(group, writes, "a", [(key, key) for key in "bcde"])

    assert [len(batch) for batch in writes.batches] == [1, 2, 2]


def test_a_failed_batch_is_written_row_by_row_and_fails_only_the_bad_row():
    writes = GatedWrites(fail_on={"bad"})
    group = GroupCommit(writes)

    futures = queue_behind_first(group, writes, "a", [("b", "b"), ("bad", "bad"), ("c", "c")])

    assert futures[1].result() == "stored b" and futures[3].result() == "stored c"
    with pytest.raises(ValueError, match="bad"):
        futures[2].result()
    assert sorted(batch[0] for batch in writes.batches if len(batch) == 1) == ["a", "b", "bad", "c"]


def test_a_failed_write_of_one_row_raises_to_its_submitter():
    writes = GatedWrites(fail_on={"bad"})
    writes.open_gate()
    group = GroupCommit(writes)

    with pytest.raises(ValueError, match="bad"):
        group.submit("bad", "bad")
    assert writes.batches == [["bad"]]


def test_the_group_writes_on_after_a_failure():
    writes = GatedWrites(fail_on={"bad"})
    writes.open_gate()
    group = GroupCommit(writes)
    with pytest.raises(ValueError):
        group.submit("bad", "bad")

    assert group.submit("a", "a") == "stored a"
    assert group.queued() == 0


def test_the_batch_sizes_are_reported():
    writes = GatedWrites()
    sizes: list[int] = []
    group = GroupCommit(writes, on_batch=sizes.append)

    queue_behind_first(group, writes, "a", [("b", "b"), ("c", "c")])

    assert sizes == [1, 2]


class Busy(Exception):
    """Stands for an error every write made now would meet too (SQLite's "database is locked")."""


def first_write_finds_the_database_busy(writes: GatedWrites):
    def write(rows: list[str]) -> list[str]:
        if len(writes.batches) == 0:
            writes(rows)
            raise Busy("database is locked")
        return writes(rows)

    return write


def test_an_error_every_write_would_meet_fails_the_rows_queued_behind_at_once_unwritten():
    writes = GatedWrites()
    group = GroupCommit(first_write_finds_the_database_busy(writes), fails_every_write=lambda exc: isinstance(exc, Busy))

    futures = queue_behind_first(group, writes, "a", [("b", "b"), ("c", "c")])

    assert all(isinstance(future.exception(), Busy) for future in futures)
    assert writes.batches == [["a"]]  # neither as a batch nor row by row: each would only wait as long again


def test_a_row_submitted_after_such_a_failure_is_written():
    writes = GatedWrites()
    group = GroupCommit(first_write_finds_the_database_busy(writes), fails_every_write=lambda exc: isinstance(exc, Busy))
    queue_behind_first(group, writes, "a", [("b", "b")])

    assert group.submit("d", "d") == "stored d"
    assert group.queued() == 0
