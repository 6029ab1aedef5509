"""Listing, showing and retrying deliveries: the plain functions behind `/api/deliveries` and `crm-ingest deliveries`.

A retry puts a failed or dead delivery back in the queue with a fresh retry budget; its attempt count goes on, so
the CRM module looks for anything an earlier attempt wrote, and the drainer sends the store's current data. Only
deliveries of a configured destination are retried: nothing would ever drain the others.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crm_sync.schema import Delivery, DeliveryStatus, InteractionEvent, StoredInteraction
from ingest.db import transaction
from ingest.listing import BadFilter, Page, filter_text, newest_first_page
from ingest.runtime import Runtime
from ingest.schema import utcnow


class DestinationNotConfigured(LookupError):
    """Retrying deliveries of a destination the configuration no longer has: they would stay pending forever."""

    def __init__(self, name: str, configured: list[str]):
        super().__init__(f"destination {name!r} is not configured (configured: {', '.join(configured) or 'none'}); "
                         f"its deliveries cannot be retried until it is added back")


def require_configured(runtime: Runtime, name: str | None) -> None:
    if name is not None and name not in runtime.settings.destinations:
        raise DestinationNotConfigured(name, sorted(runtime.settings.destinations))


@dataclass(frozen=True)
class DeliveryFilter:
    status: str | None = None
    destination: str | None = None

    @classmethod
    def parse(cls, status: str | None = None, destination: str | None = None) -> "DeliveryFilter":
        """From request or command-line values: strings or None (anything else is a BadFilter naming the field)."""
        status, destination = filter_text("status", status), filter_text("destination", destination)
        if status and status not in DeliveryStatus.ALL:
            raise BadFilter(f"status must be one of {', '.join(DeliveryStatus.ALL)}")
        return cls(status or None, destination or None)

    def apply(self, query):
        if self.status:
            query = query.where(Delivery.status == self.status)
        if self.destination:
            query = query.where(Delivery.destination == self.destination)
        return query


# What a delivery filter is given by: query parameters, JSON keys and (as --status …) command-line options.
FILTER_NAMES = tuple(field.name for field in fields(DeliveryFilter))


def deliveries_page(session: Session, delivery_filter: DeliveryFilter, limit: int = 100, before: int | None = None
                    ) -> Page:
    """Matching deliveries, newest first, with ids below `before`; the page's `next_before` leads to older ones."""
    return newest_first_page(session, delivery_filter.apply(select(Delivery)), Delivery.id, limit, before)


def delivery_summary(delivery: Delivery) -> dict:
    return {
        "id": delivery.id, "destination": delivery.destination, "status": delivery.status,
        "interaction_id": delivery.interaction_id, "contact_id": delivery.contact_id,
        "idempotency_key": delivery.idempotency_key, "revision": delivery.revision,
        "delivered_revision": delivery.delivered_revision, "attempts": delivery.attempts,
        "last_status": delivery.last_status, "error_class": delivery.last_error_class,
        "error_message": delivery.last_error, "next_attempt_at": _iso(delivery.next_attempt_at),
        "created_at": _iso(delivery.created_at), "updated_at": _iso(delivery.updated_at),
    }


def delivery_detail(session: Session, delivery: Delivery) -> dict:
    interaction = session.get(StoredInteraction, delivery.interaction_id)
    event_ids = session.scalars(select(InteractionEvent.event_id).where(
        InteractionEvent.interaction_id == delivery.interaction_id).order_by(InteractionEvent.event_id))
    return {
        **delivery_summary(delivery),
        "armed_at": _iso(delivery.armed_at), "first_attempt_at": _iso(delivery.first_attempt_at),
        "last_attempt_at": _iso(delivery.last_attempt_at), "succeeded_at": _iso(delivery.succeeded_at),
        "crm": {"contact_id": delivery.crm_contact_id, "interaction_id": delivery.crm_interaction_id,
                "url": delivery.crm_url},
        "interaction": None if interaction is None else {
            "kind": interaction.kind, "provider": interaction.provider, "source": interaction.source,
            "conversation_id": interaction.conversation_id, "external_id": interaction.external_id,
            "state": interaction.state, "occurred_at": _iso(interaction.occurred_at),
        },
        "event_ids": list(event_ids),
    }


def retry_deliveries(runtime: Runtime, delivery_ids: list[int]) -> list[int]:
    """Re-arm the failed and dead ones among these deliveries and wake their drainers; the ids re-armed."""
    if not delivery_ids:
        return []
    now = utcnow()
    with transaction(runtime.sessions) as session:
        rows = session.execute(
            update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.status.in_(DeliveryStatus.RETRIABLE),
                                   Delivery.destination.in_(sorted(runtime.settings.destinations)))
            .values(status=DeliveryStatus.PENDING, next_attempt_at=now, armed_at=now,
                    attempts_at_arming=Delivery.attempts, updated_at=now)
            .returning(Delivery.id, Delivery.destination)
        ).all()
    runtime.delivery.wake({row.destination for row in rows})
    return sorted(row.id for row in rows)


def retry_matching(runtime: Runtime, delivery_filter: DeliveryFilter, dry_run: bool, batch: int = 500) -> dict:
    """Retry every failed or dead delivery matching the filter, of a configured destination (dry run: only count
    them). A filter naming a destination that is not configured is refused (DestinationNotConfigured)."""
    retriable = " or ".join(DeliveryStatus.RETRIABLE)
    if not delivery_filter.status:
        raise BadFilter(f"give status: {retriable} (only those deliveries can be retried)")
    if delivery_filter.status not in DeliveryStatus.RETRIABLE:
        raise BadFilter(f"deliveries with status {delivery_filter.status} cannot be retried: give status {retriable}")
    require_configured(runtime, delivery_filter.destination)
    configured = Delivery.destination.in_(sorted(runtime.settings.destinations))
    with runtime.sessions() as session:
        matching = session.scalar(delivery_filter.apply(select(func.count(Delivery.id))).where(configured))
        if dry_run:
            return {"dry_run": True, "matching": matching, "retried": 0}
        ids = list(session.scalars(delivery_filter.apply(select(Delivery.id)).where(configured).order_by(Delivery.id)))
    retried = sum(len(retry_deliveries(runtime, ids[start:start + batch])) for start in range(0, len(ids), batch))
    return {"dry_run": False, "matching": matching, "retried": retried}


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None
