"""SharedRead: the reads anyone can trigger (/readyz, /metrics state) go to the database and the broker at most once
at a time and once per window, whatever the number of requests."""
from __future__ import annotations

import threading

import pytest

from ingest.shared_reads import SharedRead


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountedRead:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_requests_within_the_window_share_one_read():
    clock, read = Clock(), CountedRead()
    shared = SharedRead(read, fresh_seconds=1.0, clock=clock)

    values = [shared.get(), shared.get()]
    clock.now += 0.9

    assert values + [shared.get()] == [1, 1, 1] and read.calls == 1


def test_a_request_after_the_window_reads_again():
    clock, read = Clock(), CountedRead()
    shared = SharedRead(read, fresh_seconds=1.0, clock=clock)
    shared.get()
    clock.now += 1.0

    assert shared.get() == 2


def test_requests_during_a_read_wait_for_it_instead_of_reading_too():
    started, release, read_count = threading.Event(), threading.Event(), []

    def slow_read() -> str:
        read_count.append(1)
        started.set()
        release.wait(10)
        return "state"

    shared = SharedRead(slow_read, fresh_seconds=1.0)
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(shared.get()))
    first.start()
    started.wait(10)
    others = [threading.Thread(target=lambda: results.append(shared.get())) for _ in range(5)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(10)

    assert (results, len(read_count)) == (["state"] * 6, 1)


def test_a_read_that_failed_is_not_kept():
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database away")
        return "state"

    shared = SharedRead(flaky, fresh_seconds=60.0)
    with pytest.raises(ConnectionError):
        shared.get()

    assert shared.get() == "state"
