"""The PostgreSQL backend that the next one-statement hot-path write of an engine will run on."""
from __future__ import annotations

from sqlalchemy import Engine

from ingest.kept_connections import kept_connections


def backend_of_next_write(engine: Engine) -> int:
    kept_ones = kept_connections(engine)
    kept = kept_ones.take()
    try:
        return kept.connection.info.backend_pid
    finally:
        kept_ones.give_back(kept)
