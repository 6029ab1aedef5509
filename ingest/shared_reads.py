"""Reads of the database and the broker that unauthenticated callers can trigger (/readyz, the state part of
/metrics), shared by a process's requests: at most one at a time, and at most one per FRESH_SECONDS.

Each such read opens connections of its own (ingest.db_checks.read_within: a pooled connection might hang on a silent
server), so without this anyone who can reach the webhook port could make it open database and broker connections
as fast as they send requests, until PostgreSQL's max_connections refuses the webhooks' own. A probe every few
seconds and a scrape every 15 s still see the state of the last second.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
FRESH_SECONDS = 1.0


class SharedRead(Generic[T]):
    def __init__(self, read: Callable[[], T], fresh_seconds: float = FRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self._read, self._fresh_seconds, self._clock = read, fresh_seconds, clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._read_at: float | None = None

    def get(self) -> T:
        """The last value if it is fresh; else a new read (a caller arriving meanwhile waits for it, then shares it).
        A read that raises is not kept: the next caller reads again."""
        with self._lock:
            if self._read_at is None or self._clock() - self._read_at >= self._fresh_seconds:
                self._value, self._read_at = self._read(), self._clock()
            return self._value  # type: ignore[return-value]
