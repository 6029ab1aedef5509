"""Waking drainers: a `drain_destination` message for each destination that has work and nobody draining it.

After an event's processing transaction commits, the worker wakes the destinations it planned new work for; beat's
`schedule_deliveries` (and `crm-ingest sweep`) wakes every destination with due work, which covers lost messages,
dead drainers and retries falling due. No countdown ever goes to the broker: the schedule is `next_attempt_at`.
Publishing is best effort; a destination already being drained, or paused, is left alone.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Iterable

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_sync.delivery.claims import has_due
from crm_sync.schema import DestinationState

DRAIN_TASK = "deliver.drain_destination"
SCHEDULE_TASK = "maintenance.schedule_deliveries"
DELIVER_QUEUE = "deliver"

log = logging.getLogger(__name__)


def wakeable(session: Session, names: Iterable[str], now: datetime) -> list[str]:
    """Of these destinations, those with no live lease and no pause (breaker open, throttled)."""
    names = sorted(set(names))
    states = {state.destination: state for state in session.scalars(
        select(DestinationState).where(DestinationState.destination.in_(names)))}
    return [name for name in names if name not in states or not _busy_or_paused(states[name], now)]


def due_destinations(session: Session, names: Iterable[str], now: datetime) -> list[str]:
    return [name for name in sorted(set(names)) if has_due(session, name, now)]


def _busy_or_paused(state: DestinationState, now: datetime) -> bool:
    return any(moment is not None and moment > now
               for moment in (state.lease_until, state.circuit_open_until, state.throttled_until))


def publish_drains(celery: Callable[[], Celery], names: Iterable[str]) -> list[str]:
    """Send one drain message per destination; the names sent (a broker failure is logged, the sweep retries).

    `celery` builds (or returns) the app only when there is something to send: a web process that never publishes
    a drain never connects to the broker for it.
    """
    names, sent = list(names), []
    if not names:
        return sent
    try:
        app = celery()
        with app.producer_or_acquire() as producer:
            for name in names:
                app.send_task(DRAIN_TASK, args=[name], queue=DELIVER_QUEUE, producer=producer, retry=False,
                              ignore_result=True)
                sent.append(name)
    except Exception as exc:  # the deliveries are safe in the database; the next sweep wakes their drainer
        log.warning("could not publish drains for %s: %s", ", ".join(names), exc)
    return sent
