"""A write transaction on SQLite waits for another writer instead of failing with "database is locked"."""
from __future__ import annotations

import threading

from sqlalchemy import text

from ingest.db import make_engine, make_sessions, transaction

HOLD_SECONDS = 0.3


def test_a_transaction_that_reads_then_writes_waits_for_a_writer_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    sessions = make_sessions(engine)
    with transaction(sessions) as session:
        session.execute(text("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER)"))
        session.execute(text("INSERT INTO counters VALUES ('a', 0)"))
    writing, done = threading.Event(), threading.Event()

    def other_writer():
        with transaction(sessions) as session:
            session.execute(text("UPDATE counters SET value = value + 1"))
            writing.set()
            done.wait(HOLD_SECONDS)

    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        writing.wait()
        with transaction(sessions) as session:
            value = session.execute(text("SELECT value FROM counters")).scalar_one()
            session.execute(text("UPDATE counters SET value = :value"), {"value": value + 10})
    finally:
        done.set()
        thread.join()
        engine.dispose()
    with sessions() as session:
        assert session.execute(text("SELECT value FROM counters")).scalar_one() == 11
