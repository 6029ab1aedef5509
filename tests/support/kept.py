"""An engine's kept hot-path connection, borrowed in a test the way a write borrows it."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine

from ingest.kept_connections import KeptConnection, kept_connections


@contextmanager
def borrowed(engine: Engine) -> Iterator[KeptConnection]:
    """The connection the engine's next one-statement write would run on; given back afterwards."""
    kept_ones = kept_connections(engine)
    kept = kept_ones.take()
    try:
        yield kept
    finally:
        kept_ones.give_back(kept)


def backend_of_next_write(engine: Engine) -> int:
    with borrowed(engine) as kept:
        return kept.connection.info.backend_pid
