"""The delivery engine as one process sees it: drain a destination, wake drainers, sweep for due work."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Iterable

from sqlalchemy.orm import Session, sessionmaker

from crm_sync.delivery.clock import SYSTEM_CLOCK, Clock
from crm_sync.delivery.drain import DRAIN_SECONDS, Drainer, DrainReport
from crm_sync.delivery.wake import due_destinations, publish_drains, wakeable

if TYPE_CHECKING:
    from celery import Celery

    from ingest.settings import Settings

log = logging.getLogger(__name__)


class DeliveryEngine:
    def __init__(self, settings: "Settings", sessions: sessionmaker[Session],
                 celery: Callable[[], "Celery"] | None = None, clock: Clock = SYSTEM_CLOCK,
                 time_budget: float = DRAIN_SECONDS):
        self.settings, self.sessions, self.celery, self.clock = settings, sessions, celery, clock
        self.time_budget = time_budget

    @property
    def names(self) -> list[str]:
        return sorted(self.settings.destinations)

    def drain(self, name: str) -> DrainReport:
        """Deliver what is due for one destination, if no other drainer holds it."""
        destination = self.settings.destinations.get(name)
        if destination is None:
            log.warning("drain of %r skipped: no such destination is configured", name)
            return DrainReport(name, stopped="unknown")
        return Drainer(destination, self.sessions, self.clock, self.settings.primary_policy, self.time_budget).run()

    def wake(self, names: Iterable[str]) -> list[str]:
        """Publish a drain for each of these destinations that nobody drains and nothing pauses."""
        names = [name for name in names if name in self.settings.destinations]
        if not names or self.celery is None:
            return []
        try:
            with self.sessions() as session:
                free = wakeable(session, names, self.clock.now())
        except Exception as exc:  # best effort: the sweep wakes them within delivery_sweep_interval_seconds
            log.warning("could not check which destinations to wake (%s): %s", ", ".join(names), exc)
            return []
        return publish_drains(self.celery, free)

    def due(self) -> list[str]:
        with self.sessions() as session:
            return due_destinations(session, self.names, self.clock.now())

    def schedule(self) -> list[str]:
        """The sweep: wake every destination with due work (retries fallen due, lost wakes, dead drainers)."""
        return self.wake(self.due())
