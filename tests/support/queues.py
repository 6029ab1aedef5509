"""Reading what waits in the broker's ingest queue, as a worker would find it."""
from __future__ import annotations

from ingest.outbox import INGEST_QUEUE
from ingest.runtime import Runtime


def waiting_messages(runtime: Runtime) -> list[tuple[str, list]]:
    """The messages in the ingest queue, in order and consumed: (task name, args) of each."""
    found = []
    with runtime.celery.connection_for_read() as connection, connection.SimpleQueue(INGEST_QUEUE) as waiting:
        while True:
            try:
                message = waiting.get(block=False)
            except waiting.Empty:
                return found
            found.append((message.headers["task"], message.payload[0]))
            message.ack()
