"""The outbox: stored events reach the broker after commit, and the relay catches every one that did not.

The ingress publishes right after its response: under the web server from a background thread of each worker, in
batches, and otherwise before the request ends. If the broker is down the request still succeeds: the event is left
for the relay (beat schedule and `crm-ingest sweep`), which also re-enqueues events whose message was lost or whose
worker died. Delivery is therefore at least once; the event's status transitions make processing happen once.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import timedelta

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from ingest.db import transaction
from ingest.events import EventRef, claim_for_relay, mark_not_enqueued
from ingest.queue_depth import queue_depths
from ingest.task_publisher import TaskPublisher

PROCESS_EVENTS_TASK = "ingest.process_events"
RELAY_TASK = "maintenance.relay_outbox"
INGEST_QUEUE = "ingest"
MAINTENANCE_QUEUE = "maintenance"
# After a failed publish the web process stops trying for this long, so a dead broker costs one timeout, not one
# per request; the relay picks the events up meanwhile.
BROKER_BACKOFF_SECONDS = 5.0
BROKER_CHECK_SECONDS = 5.0   # how long the relay waits for the broker to say how long the ingest queue is
# The background publisher sends at most this many events in one batch, and gets this long to flush at exit.
BACKGROUND_BATCH_MAX_EVENTS = 200
BACKGROUND_STOP_SECONDS = 10.0
# Event ids per task message. Each message costs the web process a publish (a Redis round trip, ~0.3 ms of CPU) and a
# worker its fixed statements, so under load a linger's batch should go as one message: at 100 rather than 20 the
# ingress benchmark's web CPU per webhook fell ~4.5 % and the end-to-end benchmark went from 402-432 to 476-481
# events/s. A burst still spreads over every worker process: the background publisher's batches hold at most
# BACKGROUND_BATCH_MAX_EVENTS, and a paced stream's batches hold a few events each.
EVENTS_PER_MESSAGE = 100

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, celery: Celery, sessions: sessionmaker[Session], requeue_after_seconds: float,
                 linger_seconds: float = 0.05):
        self.celery = celery
        self.sessions = sessions
        self.requeue_after = timedelta(seconds=requeue_after_seconds)
        self.linger_seconds = linger_seconds
        self._broker_down_until = 0.0
        self._background: BackgroundPublisher | None = None
        self.publisher = TaskPublisher(celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)

    def publish_after_response(self, events: list[EventRef]) -> None:
        """The ingress's publish: handed to the background publisher when the server started one, else sent now."""
        background = self._background
        if background is not None and background.submit(events):
            return
        self.publish(events)

    def start_background_publisher(self) -> None:
        """From here on this process publishes from one thread, in batches (a server calls it in each worker)."""
        if self._background is None:
            self._background = BackgroundPublisher(self, linger_seconds=self.linger_seconds)

    def stop_background_publisher(self, timeout: float = BACKGROUND_STOP_SECONDS) -> None:
        """Publish what is still waiting, then stop the thread; back to publishing at once."""
        background, self._background = self._background, None
        if background is not None:
            background.stop(timeout)

    def close(self) -> None:
        self.stop_background_publisher()
        self.publisher.close()

    def publish(self, events: list[EventRef]) -> bool:
        """Send the events in messages of up to EVENTS_PER_MESSAGE ids; on failure hand them to the relay.

        The events the broker accepted are logged as `events enqueued`, the step between stored and processing: one
        line per source with their ids, not one per event (under load a batch carries dozens, and a line costs the
        web worker as much CPU as a tenth of its request).
        """
        if not events:
            return True
        event_ids = [event.id for event in events]
        if time.monotonic() < self._broker_down_until:
            self._leave_for_relay(event_ids)
            return False
        try:
            self.publisher.publish([[event_ids[start:start + EVENTS_PER_MESSAGE]]
                                    for start in range(0, len(event_ids), EVENTS_PER_MESSAGE)])
        except Exception as exc:  # any broker failure: the events are safe in the database
            log.warning("broker publish failed, %d event(s) left for the relay: %s", len(event_ids), exc)
            self._broker_down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            self._leave_for_relay(event_ids)
            return False
        if log.isEnabledFor(logging.INFO):
            for source, source_ids in _ids_by_source(events).items():
                log.info("events enqueued", extra={"event_ids": source_ids, "source": source, "queue": INGEST_QUEUE})
        return True

    def relay(self, limit: int = 500) -> int:
        """Enqueue every event still waiting (never enqueued, or stale); the number enqueued.

        An event whose message is older than requeue_after counts as lost only while the ingest queue is empty:
        behind a backlog it is simply still waiting, and enqueueing it again would grow the backlog on every pass.
        """
        stale = self._ingest_queue_drained()
        total = 0
        while True:
            with transaction(self.sessions) as session:
                claimed = claim_for_relay(session, requeue_after=self.requeue_after, limit=limit, stale=stale)
            if not claimed:
                return total
            self._broker_down_until = 0.0  # the relay always tries the broker
            if not self.publish(claimed):
                return total
            total += len(claimed)
            if len(claimed) < limit:
                return total

    def _ingest_queue_drained(self) -> bool:
        try:
            depths, _ = queue_depths(self.celery, [INGEST_QUEUE], timeout=BROKER_CHECK_SECONDS)
        except Exception as exc:  # the publish will tell whether the broker is down; stale ones wait a pass
            log.warning("relay: could not read the ingest queue's depth, stale events wait for the next pass: %s", exc)
            return False
        return depths[INGEST_QUEUE] == 0

    def _leave_for_relay(self, event_ids: list[int]) -> None:
        try:
            with transaction(self.sessions) as session:
                mark_not_enqueued(session, event_ids)
        except Exception as exc:  # the relay still finds them once requeue_after has passed
            log.warning("could not mark %d event(s) for the relay: %s", len(event_ids), exc)


def _ids_by_source(events: list[EventRef]) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {}
    for event in events:
        ids.setdefault(event.source, []).append(event.id)
    return ids


class BackgroundPublisher:
    """One thread of a web process publishing the events its request threads hand over ("Enqueueing may batch").

    A request thread's cost after its response is one queue put; while a batch is on its way to the broker the next
    one gathers, so under load one message carries many events. An event whose hand-off dies with the process
    is still in the database with enqueued_at set, and the relay enqueues it after requeue_after_seconds, as it
    does for any message lost between commit and broker.
    """

    _STOP = object()

    def __init__(self, outbox: Outbox, max_batch: int = BACKGROUND_BATCH_MAX_EVENTS, linger_seconds: float = 0.05):
        self.outbox = outbox
        self.max_batch = max_batch
        self.linger_seconds = linger_seconds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # nothing is queued behind the stop marker, so a stop publishes everything
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="crm-ingest-publisher", daemon=True)
        self._thread.start()

    def submit(self, events: list[EventRef]) -> bool:
        """Queue the events; False once stopping (the caller then publishes them itself)."""
        with self._lock:
            if self._stopped:
                return False
            for event in events:
                self._queue.put(event)
        return True

    def stop(self, timeout: float) -> None:
        with self._lock:
            self._stopped = True
            self._queue.put(self._STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            if batch[0] is not self._STOP:
                # Sleep through the linger (publish_linger_seconds) rather than wake for every event: each wake-up
                # is a thread switch and a hand-over of the GIL that the request threads pay for, and each message
                # costs the broker and a worker far more than one more event id in it.
                time.sleep(self.linger_seconds)
            while len(batch) < self.max_batch and self._STOP not in batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not self._STOP]
            try:
                self.outbox.publish(batch)
            except Exception:  # publish hands broker failures to the relay itself; this keeps the thread alive
                log.exception("background publish of %d event(s) failed; the relay will enqueue them", len(batch))
