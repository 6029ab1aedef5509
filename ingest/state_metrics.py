"""Gauges read at scrape time from where the truth is: the database and the broker, never process memory.

Every query is bounded by an index and by the work *not yet done* (waiting, in-flight and dead rows), not by the
size of the history: finished events and delivered deliveries are counted by the workers' counters instead. A part
that cannot be reached is reported as `crm_ingest_state_up{part} 0` and the rest of the page is still served.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, func, or_, select
from sqlalchemy.orm import Session

from crm_sync.schema import Delivery, DeliveryStatus, DestinationState
from ingest.db_checks import read_within
from ingest.outbox import INGEST_QUEUE, MAINTENANCE_QUEUE
from ingest.schema import Event, EventStatus, utcnow

if TYPE_CHECKING:
    from ingest.runtime import Runtime

log = logging.getLogger(__name__)
DELIVER_QUEUE = "deliver"
QUEUES = (INGEST_QUEUE, DELIVER_QUEUE, MAINTENANCE_QUEUE)
EVENT_STATUSES = (EventStatus.RECEIVED, EventStatus.PROCESSING, EventStatus.DEAD)
UNFINISHED = (EventStatus.RECEIVED, EventStatus.PROCESSING)
DELIVERY_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT, DeliveryStatus.FAILED, DeliveryStatus.DEAD)
DUE = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
CIRCUIT_STATES = ("closed", "open", "half_open")


def state_families(runtime: "Runtime") -> list:
    """Every state gauge, read now: a part that cannot be read is `crm_ingest_state_up{part} 0`, the rest served."""
    up = GaugeMetricFamily("crm_ingest_state_up", "1 if the part could be read for this scrape, else 0",
                           labels=["part"])
    families: list = []
    try:
        # On a connection of its own, within CHECK_SECONDS: a pooled one may wait on a silent server forever.
        families += read_within(runtime.engine, lambda connection: _database_families_on(connection, runtime))
        up.add_metric(["database"], 1)
    except Exception as exc:
        log.warning("metrics: the database could not be read: %s", exc)
        up.add_metric(["database"], 0)
    try:
        families += broker_families(runtime)
        up.add_metric(["broker"], 1)
    except Exception as exc:
        log.warning("metrics: the broker could not be read: %s", exc)
        up.add_metric(["broker"], 0)
    return [*families, up]


class StateCollector(Collector):
    """The state gauges as `read` gives them (state_families, or a shared read of it: ingest.shared_reads)."""

    def __init__(self, read: Callable[[], list]):
        self.read = read

    def collect(self) -> Iterable:
        return iter(self.read())


def _database_families_on(connection: Connection, runtime: "Runtime") -> list:
    with Session(bind=connection) as session:
        return list(database_families(session, runtime.settings, utcnow()))


def database_families(session: Session, settings, now: datetime) -> Iterable:
    yield events_by_status(session, settings.sources)
    yield from outbox_lag(session, now - timedelta(seconds=settings.requeue_after_seconds), now)
    yield from deliveries(session, settings.destinations, now)
    yield from circuits(session, settings.destinations, now)


def events_by_status(session: Session, sources: Iterable[str]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "crm_ingest_events", "Events waiting (received), in flight (processing) or dead, by source",
        labels=["source", "status"])
    counts = {(source, status): 0 for source in sources for status in EVENT_STATUSES}
    rows = session.execute(select(Event.source, Event.status, func.count()).where(Event.status.in_(EVENT_STATUSES))
                           .group_by(Event.source, Event.status))
    counts.update({(source, status): count for source, status, count in rows})
    for (source, status), count in sorted(counts.items()):
        family.add_metric([source, str(status)], count)
    return family


def outbox_lag(session: Session, stale_before: datetime, now: datetime) -> Iterable[GaugeMetricFamily]:
    """Events the broker should have but may not: never enqueued (publish failed) or enqueued too long ago."""
    not_in_broker = or_(Event.enqueued_at.is_(None), Event.enqueued_at < stale_before)
    waiting, oldest = session.execute(select(func.count(), func.min(Event.received_at))
                                      .where(Event.status.in_(UNFINISHED), not_in_broker)).one()
    oldest_unfinished = session.scalar(select(func.min(Event.received_at)).where(Event.status.in_(UNFINISHED)))
    yield GaugeMetricFamily("crm_ingest_outbox_waiting_events",
                            "Unfinished events never enqueued or enqueued longer ago than requeue_after_seconds",
                            value=waiting)
    yield GaugeMetricFamily("crm_ingest_outbox_lag_seconds",
                            "Age of the oldest event never enqueued or stale in the queue (0 when none)",
                            value=_age(oldest, now))
    yield GaugeMetricFamily("crm_ingest_oldest_unfinished_event_seconds",
                            "Age of the oldest event not yet processed, ignored or dead (0 when none)",
                            value=_age(oldest_unfinished, now))


def deliveries(session: Session, destinations: Iterable[str], now: datetime) -> Iterable[GaugeMetricFamily]:
    by_status = GaugeMetricFamily("crm_ingest_deliveries", "Deliveries not yet delivered, by destination and status",
                                  labels=["destination", "status"])
    counts = {(name, status): 0 for name in destinations for status in DELIVERY_STATUSES}
    rows = session.execute(select(Delivery.destination, Delivery.status, func.count())
                           .where(Delivery.status.in_(DELIVERY_STATUSES))
                           .group_by(Delivery.destination, Delivery.status))
    counts.update({(name, status): count for name, status, count in rows})
    for (name, status), count in sorted(counts.items()):
        by_status.add_metric([name, status], count)
    yield by_status
    overdue = GaugeMetricFamily("crm_ingest_delivery_overdue_seconds",
                                "How long the most overdue delivery has been due, by destination (0 when none)",
                                labels=["destination"])
    oldest = dict.fromkeys(destinations)
    oldest.update(session.execute(select(Delivery.destination, func.min(Delivery.next_attempt_at))
                                  .where(Delivery.status.in_(DUE), Delivery.next_attempt_at <= now)
                                  .group_by(Delivery.destination)).all())
    for name, due_at in sorted(oldest.items()):
        overdue.add_metric([name], _age(due_at, now))
    yield overdue


def circuits(session: Session, destinations, now: datetime) -> Iterable[GaugeMetricFamily]:
    state = GaugeMetricFamily("crm_ingest_circuit_state",
                              "1 for the destination's circuit breaker state (closed, open, half_open)",
                              labels=["destination", "state"])
    paused = GaugeMetricFamily("crm_ingest_destination_paused_seconds",
                               "Seconds until the destination may be called again, by reason (circuit_open, "
                               "throttled: the CRM's Retry-After or our rate bucket)", labels=["destination", "reason"])
    rows = {row.destination: row for row in session.scalars(select(DestinationState))}
    for name in sorted(destinations):
        row = rows.get(name)
        current = _circuit_state(row, destinations[name].circuit_failures, now)
        for candidate in CIRCUIT_STATES:
            state.add_metric([name, candidate], 1 if candidate == current else 0)
        paused.add_metric([name, "circuit_open"], _remaining(row.circuit_open_until if row else None, now))
        paused.add_metric([name, "throttled"], _remaining(row.throttled_until if row else None, now))
    yield state
    yield paused


def _circuit_state(row: DestinationState | None, failures_to_open: int, now: datetime) -> str:
    if row is None:
        return "closed"
    if row.circuit_open_until and row.circuit_open_until > now:
        return "open"
    return "half_open" if row.consecutive_failures >= failures_to_open else "closed"


def broker_families(runtime: "Runtime") -> Iterable[GaugeMetricFamily]:
    from ingest.queue_depth import queue_depths

    depths, unacked = queue_depths(runtime.celery, QUEUES, runtime.settings.publish_timeout_seconds)
    depth = GaugeMetricFamily("crm_ingest_queue_depth", "Messages waiting in the broker, by queue", labels=["queue"])
    for queue, count in depths.items():
        depth.add_metric([queue], count)
    yield depth
    if unacked is not None:
        yield GaugeMetricFamily("crm_ingest_queue_unacked",
                                "Messages a worker has taken and not yet acknowledged (Redis)", value=unacked)


def _age(moment: datetime | None, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment else 0.0


def _remaining(moment: datetime | None, now: datetime) -> float:
    return max(0.0, (moment - now).total_seconds()) if moment else 0.0
