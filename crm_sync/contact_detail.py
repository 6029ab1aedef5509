"""Everything the store holds about one contact, as JSON for the admin API: identities, values, interactions."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_sync.contacts import crm_links, ordered_identities, recent_interactions, resolve_ids
from crm_sync.normalise import EMAIL, PHONE
from crm_sync.schema import Contact, ContactIdentity, ContactValue, InteractionEvent, StoredInteraction

MAX_INTERACTIONS = 100


def contact_detail(session: Session, contact_id: int) -> dict[str, Any] | None:
    """The surviving contact for `contact_id` (a merged id resolves), or None if there never was one."""
    live_id = resolve_ids(session, [contact_id]).get(contact_id)
    if live_id is None:
        return None
    contact = session.get(Contact, live_id)
    identities = list(session.scalars(select(ContactIdentity).where(ContactIdentity.contact_id == live_id)
                                      .order_by(ContactIdentity.id)))
    values = session.scalars(select(ContactValue).where(ContactValue.contact_id == live_id)
                             .order_by(ContactValue.field, ContactValue.first_event_id, ContactValue.first_position))
    merged_from = session.scalars(select(Contact.id).where(Contact.merged_into == live_id).order_by(Contact.id))
    total = session.scalar(select(func.count(StoredInteraction.id)).where(StoredInteraction.contact_id == live_id))
    interactions = recent_interactions(session, [live_id], MAX_INTERACTIONS)[live_id]
    return {
        "id": live_id,
        "requested_id": contact_id,
        "name": contact.name, "company": contact.company, "description": contact.description,
        "emails": ordered_identities(contact, identities, EMAIL),
        "phones": ordered_identities(contact, identities, PHONE),
        "primary_email": contact.primary_email, "primary_phone": contact.primary_phone,
        "created_at": _iso(contact.created_at), "updated_at": _iso(contact.updated_at),
        "merged_from": list(merged_from),
        "identities": [_identity(identity) for identity in identities],
        "values": [_value(value) for value in values],
        "crm_links": crm_links(identities),
        "interactions_total": total,
        "interactions": _interactions(session, interactions),
    }


def _identity(identity: ContactIdentity) -> dict[str, Any]:
    return {"kind": identity.kind, "value": identity.value, "scope": identity.scope or None, "role": identity.role,
            "source": identity.source,
            "first_event_id": identity.first_event_id, "url": identity.url, "created_at": _iso(identity.created_at)}


def _value(value: ContactValue) -> dict[str, Any]:
    return {
        "field": value.field, "value": value.value, "normalised": value.normalised,
        "verified": value.normalised is not None if value.field in (EMAIL, PHONE) else None,
        "provider": value.provider, "source": value.source,
        "first_event_id": value.first_event_id, "first_seen_at": _iso(value.first_seen_at),
        "last_event_id": value.last_event_id, "last_seen_at": _iso(value.last_seen_at),
    }


def _interactions(session: Session, rows: list[StoredInteraction]) -> list[dict[str, Any]]:
    events: dict[int, list[dict]] = {row.id: [] for row in rows}
    if rows:
        for link in session.scalars(select(InteractionEvent).where(InteractionEvent.interaction_id.in_(list(events)))
                                    .order_by(InteractionEvent.event_id)):
            events[link.interaction_id].append({"event_id": link.event_id, "event_type": link.event_type})
    return [{
        "id": row.id, "kind": row.kind, "provider": row.provider, "source": row.source,
        "conversation_id": row.conversation_id, "external_id": row.external_id, "state": row.state,
        "subject": row.subject, "occurred_at": _iso(row.occurred_at), "first_event_id": row.event_id,
        "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
        "events": events[row.id],
        **_public_details(row.details or {}),
    } for row in rows]


def _public_details(details: dict[str, Any]) -> dict[str, Any]:
    """The stored details without the merge bookkeeping inside transcript messages."""
    transcript = [{k: v for k, v in message.items() if k not in ("key", "stamp")}
                  for message in details.get("transcript", [])]
    return {**details, "transcript": transcript} if transcript else details


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
