"""A few autocommit psycopg connections kept beside an engine's pool for the one-statement hot paths (the ingress
INSERT, a message's attempts), each running its statements as prepared statements (ingest.prepared_statements).

Why kept: checking a connection out of the pool, switching it to autocommit and back, opening a cursor and checking
the connection in again (with the pool's reset) was a third of the ingress INSERT's client cost: 0.40 M instructions
per request against 0.26 M on a kept connection (callgrind).

At most as many are kept as the pool's size (5 by default): under group commit (ingest.group_commit) a web worker's
ingress writes mostly use one, the attempts of a worker's threads one each, and a caller beyond the limit takes the
pooled way. A connection that raised is closed, not kept. `Engine.dispose()` (and so `Runtime.close()`) closes the
idle ones at once and the busy ones when they come back. A forked child never uses its parent's: it forgets them
(psycopg leaves the parent's sockets alone) and opens its own.
"""
from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import Engine, event

DEFAULT_LIMIT = 5


@dataclass
class KeptConnection:
    connection: Any  # the driver's connection, in autocommit
    generation: int
    statements: Any  # its ingest.prepared_statements.PreparedStatements

    def execute(self, sql: str, parameters: dict[str, Any]) -> list[Sequence]:
        """Run one statement (`%(name)s` placeholders) as its own transaction; its rows. Raises the driver's error."""
        return self.statements.execute(sql, parameters)


class KeptConnections:
    """The kept connections of one engine."""

    def __init__(self, engine: Engine, limit: int):
        self._engine = weakref.ref(engine)
        self.limit = limit
        self._lock = threading.Lock()
        self._idle: list[KeptConnection] = []
        self._count = 0  # open ones, idle or in use
        self._generation = 0  # moves on at every dispose: older ones are closed when they come back
        self._pid = os.getpid()

    def take(self) -> KeptConnection | None:
        """An idle kept connection, a new one, or None at the limit (the caller then takes the pooled way)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child: its parent's connections are not its own
                self._idle, self._count, self._pid = [], 0, os.getpid()
            if self._idle:
                return self._idle.pop()
            if self._count >= self.limit:
                return None
            self._count += 1
            generation = self._generation
        try:
            return self._open(generation)
        except BaseException:
            with self._lock:
                self._count -= 1
            raise

    def give_back(self, kept: KeptConnection) -> None:
        with self._lock:
            if kept.generation == self._generation and self._pid == os.getpid():
                self._idle.append(kept)
                return
        self.discard(kept)

    def discard(self, kept: KeptConnection) -> None:
        """Close it (it raised, or its engine was disposed meanwhile)."""
        with self._lock:
            if kept.generation == self._generation:
                self._count -= 1
        try:
            kept.connection.close()
        except Exception:  # closing a connection that already broke
            pass

    def close_all(self, *_engine) -> None:
        """Close the idle ones now and the busy ones when they come back (the engine is being disposed)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
            self._count = 0
        for kept in idle:
            try:
                kept.connection.close()
            except Exception:
                pass

    def _open(self, generation: int) -> KeptConnection:
        engine = self._engine()
        if engine is None:
            raise RuntimeError("the engine of these kept connections is gone")
        pooled = engine.raw_connection()  # the pool's connect logic and events; detached, it is ours for good
        connection = pooled.driver_connection
        pooled.detach()
        connection.autocommit = True
        from ingest.prepared_statements import PreparedStatements  # psycopg, only where PostgreSQL is used

        return KeptConnection(connection, generation, PreparedStatements(connection))


_by_engine: weakref.WeakKeyDictionary[Engine, KeptConnections] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def kept_connections(engine: Engine) -> KeptConnections:
    """The engine's kept connections, closed whenever the engine is disposed."""
    kept = _by_engine.get(engine)
    if kept is None:
        with _registry_lock:
            kept = _by_engine.get(engine)
            if kept is None:
                size = getattr(engine.pool, "size", None)
                kept = _by_engine[engine] = KeptConnections(engine, size() if callable(size) else DEFAULT_LIMIT)
                event.listen(engine, "engine_disposed", kept.close_all)
    return kept
