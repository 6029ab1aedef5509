"""Which deliveries are due, and claiming them for the drainer that holds the destination's lease.

A delivery is due when it is pending or failed and its next attempt time has come, or when it is in flight while
nobody holds the lease (its drainer died): claiming it counts one more attempt, so the CRM module looks for what the
lost attempt may have written before writing again.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from crm_sync.delivery.snapshots import Claimed
from crm_sync.schema import Delivery, DeliveryStatus


def _due(now: datetime):
    return or_(and_(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.FAILED]),
                    Delivery.next_attempt_at <= now),
               Delivery.status == DeliveryStatus.IN_FLIGHT)


def claim_due(session: Session, name: str, now: datetime, limit: int) -> list[Claimed]:
    """Up to `limit` due deliveries, oldest due first, marked in flight with their attempt counted.

    Rows an event's processing transaction is re-planning right now are skipped (PostgreSQL's SKIP LOCKED) and
    picked up by the next claim instead of waiting for it.
    """
    candidates = (select(Delivery.id).where(Delivery.destination == name, _due(now))
                  .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
                  .with_for_update(skip_locked=True))
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    rows = session.execute(
        update(Delivery).where(Delivery.id.in_(ids), _due(now))
        .values(status=DeliveryStatus.IN_FLIGHT, attempts=Delivery.attempts + 1, last_attempt_at=now,
                first_attempt_at=func.coalesce(Delivery.first_attempt_at, now), updated_at=now)
        .returning(Delivery.id, Delivery.interaction_id, Delivery.revision, Delivery.attempts)
    ).all()
    return sorted((Claimed(row.id, row.interaction_id, row.revision, row.attempts) for row in rows),
                  key=lambda c: ids.index(c.delivery_id))


def has_due(session: Session, name: str, now: datetime) -> bool:
    return session.scalar(select(Delivery.id).where(Delivery.destination == name, _due(now)).limit(1)) is not None


def next_due_at(session: Session, name: str) -> datetime | None:
    """When the destination's earliest waiting delivery falls due (None if nothing waits)."""
    return session.scalar(select(func.min(Delivery.next_attempt_at)).where(
        Delivery.destination == name, Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.FAILED])))
