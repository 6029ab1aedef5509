"""Group commit: the threads of one process that want to write at the same moment share one statement, one
transaction and one flush of the database's log.

The first thread to arrive writes its own row at once, so a quiet service waits for nothing. Threads that arrive
while a write is on its way queue up, and when it returns, the first of them writes all of their rows in one
statement. Batches therefore grow with the load and never wait for company. Every thread still returns only after
the statement that carried its row has committed: an acknowledgement is as durable as before.

Why: on PostgreSQL a committed single-row INSERT costs the server a round trip and a log flush (fdatasync), and the
web process a round trip, whatever the row. In the ingress benchmark (2 vCPUs, PostgreSQL on the same machine) a
web worker's request threads were mostly waiting on one another's INSERTs; sharing them cut PostgreSQL's CPU per
webhook by about a third. (PostgreSQL's own commit_delay only groups flushes, and only when five other transactions
are open.)
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, Sequence, TypeVar

log = logging.getLogger(__name__)
Row = TypeVar("Row")
Result = TypeVar("Result")


@dataclass(eq=False)
class _Waiter(Generic[Row, Result]):
    key: Hashable
    row: Row
    wake: threading.Lock = field(default_factory=threading.Lock)  # held until done, or until it leads a batch
    done: bool = False
    result: Result | None = None
    error: BaseException | None = None
    alone: bool = False  # its batch failed: it writes its own row, so that one bad row fails only its own request

    def __post_init__(self) -> None:
        self.wake.acquire()


class GroupCommit(Generic[Row, Result]):
    """Runs `write_batch(rows)` for batches of concurrently submitted rows; each submitter gets its own result.

    `write_batch` gets rows with distinct keys (a second row with a key already in the batch waits for the next
    one, so that it sees the first one committed) and returns one result per row, in order, or raises.

    A failed batch is written again row by row, so that one bad row fails only its own submitter; but an error for
    which `fails_every_write` is true (the database busy) fails the batch and every row queued behind it at once:
    their writes would only wait as long again, while their senders wait for an answer.
    """

    def __init__(self, write_batch: Callable[[list[Row]], Sequence[Result]], max_batch: int = 64,
                 on_batch: Callable[[int], None] | None = None,
                 fails_every_write: Callable[[BaseException], bool] = lambda _error: False):
        self._write_batch = write_batch
        self.max_batch = max_batch
        self._on_batch = on_batch
        self._fails_every_write = fails_every_write
        self._lock = threading.Lock()
        self._queue: deque[_Waiter[Row, Result]] = deque()

    def queued(self) -> int:
        """Rows submitted and not yet written (the one being written included)."""
        return len(self._queue)

    def submit(self, key: Hashable, row: Row) -> Result:
        """Write the row, alone or with others; its result once the batch committed, or the batch's error."""
        waiter: _Waiter[Row, Result] = _Waiter(key, row)
        with self._lock:
            self._queue.append(waiter)
            leads = len(self._queue) == 1
        if not leads:
            waiter.wake.acquire()  # released when a leader wrote our row, or when we are at the front
        if not waiter.done:
            self._lead()
        if waiter.alone:
            return self._write_batch([waiter.row])[0]
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]

    def _lead(self) -> None:
        """At the front of the queue: write the batch that starts here, hand out the results, wake the next leader."""
        with self._lock:
            batch = self._batch_from_front()
        try:
            results = self._write_batch([waiter.row for waiter in batch])
        except BaseException as exc:
            if self._fails_every_write(exc):
                self._fail_everyone_waiting(exc)
            else:
                if len(batch) > 1:
                    log.warning("a write of %d rows together failed (%s); each is written alone", len(batch),
                                type(exc).__name__)
                self._finish(batch, None, exc)
        else:
            self._finish(batch, results, None)
        if self._on_batch is not None:
            self._on_batch(len(batch))

    def _batch_from_front(self) -> list[_Waiter[Row, Result]]:
        batch: list[_Waiter[Row, Result]] = []
        keys: set[Hashable] = set()
        for waiter in self._queue:
            if len(batch) == self.max_batch or waiter.key in keys:
                break
            batch.append(waiter)
            keys.add(waiter.key)
        return batch

    def _fail_everyone_waiting(self, error: BaseException) -> None:
        """The leader's batch and every row queued behind it fail with `error`. A row submitted from now on finds
        the queue empty and writes at once: by then the database may take it."""
        with self._lock:
            waiting = list(self._queue)  # the leader first
            self._queue.clear()
        for index, waiter in enumerate(waiting):
            waiter.error, waiter.done = error, True
            if index:
                waiter.wake.release()

    def _finish(self, batch: list[_Waiter[Row, Result]], results: Sequence[Result] | None,
                error: BaseException | None) -> None:
        with self._lock:
            for _ in batch:
                self._queue.popleft()
            next_leader = self._queue[0] if self._queue else None
        if next_leader is not None:  # first: the next write goes out while these threads answer their requests
            next_leader.wake.release()
        for index, waiter in enumerate(batch):
            if results is not None:
                waiter.result = results[index]
            elif len(batch) > 1:
                waiter.alone = True
            else:
                waiter.error = error
            waiter.done = True
            if index:
                waiter.wake.release()
