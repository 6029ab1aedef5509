"""The outbox: stored events reach the broker after commit, and the relay catches every one that did not.

The ingress publishes right after its commit. If the broker is down the request still succeeds: the event is left
for the relay (beat schedule and `crm-ingest sweep`), which also re-enqueues events whose message was lost or whose
worker died. Delivery is therefore at least once; the event's status transitions make processing happen once.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from ingest.db import transaction
from ingest.events import claim_for_relay, mark_not_enqueued

PROCESS_EVENT_TASK = "ingest.process_event"
RELAY_TASK = "maintenance.relay_outbox"
INGEST_QUEUE = "ingest"
MAINTENANCE_QUEUE = "maintenance"
# After a failed publish the web process stops trying for this long, so a dead broker costs one timeout, not one
# per request; the relay picks the events up meanwhile.
BROKER_BACKOFF_SECONDS = 5.0

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, celery: Celery, sessions: sessionmaker[Session], requeue_after_seconds: float):
        self.celery = celery
        self.sessions = sessions
        self.requeue_after = timedelta(seconds=requeue_after_seconds)
        self._broker_down_until = 0.0

    def publish(self, event_ids: list[int]) -> bool:
        """Send one process_event message per event; on failure hand the events to the relay."""
        if not event_ids:
            return True
        if time.monotonic() < self._broker_down_until:
            self._leave_for_relay(event_ids)
            return False
        try:
            with self.celery.producer_or_acquire() as producer:
                for event_id in event_ids:
                    self.celery.send_task(PROCESS_EVENT_TASK, args=[event_id], queue=INGEST_QUEUE,
                                          producer=producer, retry=False, ignore_result=True)
        except Exception as exc:  # any broker failure: the events are safe in the database
            log.warning("broker publish failed, %d event(s) left for the relay: %s", len(event_ids), exc)
            self._broker_down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            self._leave_for_relay(event_ids)
            return False
        return True

    def relay(self, limit: int = 500) -> int:
        """Enqueue every event still waiting (never enqueued, or stale); the number enqueued."""
        total = 0
        while True:
            with transaction(self.sessions) as session:
                claimed = claim_for_relay(session, requeue_after=self.requeue_after, limit=limit)
            if not claimed:
                return total
            self._broker_down_until = 0.0  # the relay always tries the broker
            if not self.publish(claimed):
                return total
            total += len(claimed)
            if len(claimed) < limit:
                return total

    def _leave_for_relay(self, event_ids: list[int]) -> None:
        try:
            with transaction(self.sessions) as session:
                mark_not_enqueued(session, event_ids)
        except Exception as exc:  # the relay still finds them once requeue_after has passed
            log.warning("could not mark %d event(s) for the relay: %s", len(event_ids), exc)
