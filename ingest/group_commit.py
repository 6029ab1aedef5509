"""Group commit: the writes of concurrent request threads of one process go to the database as one statement.

A statement of several rows costs the web process and PostgreSQL far less per row than one statement per row (on the
ingress INSERT, 4 rows per statement took a third of the CPU per row of single-row statements), and every row of it
is committed by the one commit the statement ends with.

Leader and followers, no thread of its own: a caller queues its item; if no write is running it becomes the leader,
takes what is queued (up to `max_batch` items) and writes it; callers that arrive meanwhile wait as followers and are
written by the next leader. A leader writes one batch only: if items are queued when it is done, it hands leadership
to the oldest waiting caller and returns, so no caller's response waits for other callers' batches. Nobody sleeps
waiting for company: a lone caller writes at once, so an idle server answers as fast as before.

Every caller gets its result only after the write of its item returned, that is after its commit. A failing batch
never leaves a caller waiting: whatever the leader raises is delivered to every caller of its batch. A batch that
fails for its data (one row rejected) is written again one item at a time, so each caller gets its own outcome; a
batch that fails because the database is unavailable is not, and every caller of it gets that error.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Generic, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_MAX_BATCH = 64


class _Call(Generic[Item, Result]):
    """One caller's item, and what the caller is woken with: its outcome, or the leadership."""

    __slots__ = ("item", "result", "error", "answered", "woken")

    def __init__(self, item: Item):
        self.item = item
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.answered = False
        self.woken = threading.Event()

    def answer(self, result: Result | None = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.answered = result, error, True


class GroupCommitter(Generic[Item, Result]):
    """Runs `write_batch(items)` (one committed statement; one result per item, in order) for concurrent callers.

    `statements` and `rows` count what was written, for tests and diagnostics. `on_flush`, if set, is called by each
    leader with its batch's size before it writes: a test holds a leader there to let a batch gather.
    """

    def __init__(self, write_batch: Callable[[list[Item]], list[Result]], max_batch: int = DEFAULT_MAX_BATCH):
        self._write_batch = write_batch
        self.max_batch = max_batch
        self.on_flush: Callable[[int], None] | None = None
        self.statements = 0
        self.rows = 0
        self._lock = threading.Lock()
        self._queued: deque[_Call[Item, Result]] = deque()
        self._writing = False

    @property
    def queued(self) -> int:
        """Callers waiting for a leader to take their item."""
        with self._lock:
            return len(self._queued)

    def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is queued; returns once it is committed, or raises its write's error."""
        call: _Call[Item, Result] = _Call(item)
        with self._lock:
            self._queued.append(call)
            follows = self._writing
            self._writing = True
        if follows:
            call.woken.wait()  # answered by a leader, or handed the leadership
        if not call.answered:
            self._lead()
        if call.error is not None:
            raise call.error
        return call.result

    def _lead(self) -> None:
        """Write one batch (the leader's own item is the oldest queued, so it is in it), then pass the leadership."""
        with self._lock:
            batch = [self._queued.popleft() for _ in range(min(self.max_batch, len(self._queued)))]
        try:
            if self.on_flush is not None:
                self.on_flush(len(batch))
            self._write(batch)
        except BaseException as exc:  # a bug or an interrupt: the followers get it rather than waiting forever
            for call in batch:
                if not call.answered:
                    call.answer(error=exc)
        finally:
            self._pass_leadership()
            for call in batch:
                call.woken.set()

    def _write(self, batch: list[_Call[Item, Result]]) -> None:
        try:
            results = self._run([call.item for call in batch])
        except Exception as exc:
            if len(batch) == 1 or database_unavailable(exc):
                for call in batch:
                    call.answer(error=exc)
                return
            self._write_one_by_one(batch)
            return
        for call, result in zip(batch, results, strict=True):
            call.answer(result)

    def _write_one_by_one(self, batch: list[_Call[Item, Result]]) -> None:
        """One item's data failed the batch's statement: only that item's caller gets the error."""
        for call in batch:
            try:
                call.answer(self._run([call.item])[0])
            except Exception as exc:
                call.answer(error=exc)

    def _run(self, items: list[Item]) -> list[Result]:
        self.statements += 1  # only a leader writes, and one leader at a time
        self.rows += len(items)
        return self._write_batch(items)

    def _pass_leadership(self) -> None:
        """Wake the oldest waiting caller to write the next batch; with nobody waiting, the next caller leads."""
        with self._lock:
            if self._queued:
                self._queued[0].woken.set()
            else:
                self._writing = False


def database_unavailable(exc: BaseException) -> bool:
    """The error says the connection or the database failed, not one row's data: retrying row by row cannot help.

    PEP 249's OperationalError covers a lost or refused connection and a database shutting down or out of resources.
    """
    return isinstance(exc, OperationalError) or isinstance(exc, DBAPIError) and exc.connection_invalidated
