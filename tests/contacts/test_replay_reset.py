"""Replay puts a finished event back to `received`: nothing of the previous run is shown as if it were the new one's.
On SQLite and PostgreSQL, through the real event store."""
from __future__ import annotations

from sqlalchemy import select

from ingest.db import transaction
from ingest.events import reset_for_replay
from ingest.schema import Event
from tests.contacts.conftest import chat, report, visitor


def test_an_event_put_back_for_replay_keeps_no_result_or_end_time_of_its_previous_run(store):
    event_id = store.receive(report(visitor("Ivan", email="ivan@example.ru"), chat("jivo:1")))

    with transaction(store.runtime.sessions) as session:
        reset_for_replay(session, [event_id])

    with store.session() as session:
        row = session.execute(select(Event.status, Event.processed_at, Event.result.is_(None).label("no_result"))
                              .where(Event.id == event_id)).one()
    assert (row.status, row.processed_at, bool(row.no_result)) == ("received", None, True)
