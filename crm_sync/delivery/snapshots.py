"""What a batch of deliveries sends: the contact and the interaction as the store knows them at drain time.

Built in five queries for a whole batch (interactions, merges, contacts, identities, name parts), so a
delivery always carries the latest data, including a person merged since it was planned, and the CRM record id we
linked for this destination before.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm_sync.contacts import ordered_identities, resolve_ids
from crm_sync.delivery_keys import idempotency_key
from crm_sync.destinations.base import ContactSnapshot, DeliveryRequest, InteractionSnapshot
from crm_sync.normalise import EMAIL, PHONE
from crm_sync.schema import CRM_KIND_PREFIX, Contact, ContactIdentity, ContactValue, StoredInteraction

NAME_PARTS = ("first_name", "last_name")


@dataclass(frozen=True)
class Claimed:
    """A delivery this drain holds: the revision it sends and the attempt number it counts as."""

    delivery_id: int
    interaction_id: int
    revision: int
    attempt: int


def build_requests(session: Session, destination: str, claimed: list[Claimed], primary_policy: str = "keep_first"
                   ) -> dict[int, DeliveryRequest]:
    """{delivery id: request}; a delivery whose interaction has no contact is left out."""
    interactions = {row.id: row for row in session.scalars(
        select(StoredInteraction).where(StoredInteraction.id.in_({c.interaction_id for c in claimed})))}
    live = resolve_ids(session, [row.contact_id for row in interactions.values() if row.contact_id is not None])
    contacts = _contacts(session, destination, sorted(set(live.values())), primary_policy)
    requests: dict[int, DeliveryRequest] = {}
    for item in claimed:
        interaction = interactions.get(item.interaction_id)
        contact = contacts.get(live.get(interaction.contact_id)) if interaction and interaction.contact_id else None
        if contact is None:
            continue
        requests[item.delivery_id] = DeliveryRequest(
            idempotency_key=idempotency_key(destination, item.interaction_id, item.revision),
            attempt=item.attempt, contact=contact, interaction=interaction_snapshot(interaction))
    return requests


def _contacts(session: Session, destination: str, ids: list[int], primary_policy: str) -> dict[int, ContactSnapshot]:
    if not ids:
        return {}
    crm_kind = f"{CRM_KIND_PREFIX}{destination}"
    identities: dict[int, list[ContactIdentity]] = {contact_id: [] for contact_id in ids}
    wanted = or_(ContactIdentity.kind.in_([EMAIL, PHONE]), ContactIdentity.kind == crm_kind)
    for identity in session.scalars(select(ContactIdentity).where(ContactIdentity.contact_id.in_(ids), wanted)
                                    .order_by(ContactIdentity.id)):
        identities[identity.contact_id].append(identity)
    names = _name_parts(session, ids, primary_policy)
    out = {}
    for contact in session.scalars(select(Contact).where(Contact.id.in_(ids))):
        own = identities[contact.id]
        records = [identity.value for identity in own if identity.kind == crm_kind]
        out[contact.id] = ContactSnapshot(
            contact_id=contact.id, name=contact.name, company=contact.company,
            first_name=names.get((contact.id, "first_name")), last_name=names.get((contact.id, "last_name")),
            emails=tuple(ordered_identities(contact, own, EMAIL)),
            phones=tuple(ordered_identities(contact, own, PHONE)),
            record_id=records[-1] if records else None,   # the newest link, if the CRM record was replaced
        )
    return out


def _name_parts(session: Session, ids: list[int], primary_policy: str) -> dict[tuple[int, str], str]:
    """First and last names as sent, chosen like the display name: the first seen, or the newest."""
    rows = session.scalars(select(ContactValue).where(ContactValue.contact_id.in_(ids),
                                                      ContactValue.field.in_(NAME_PARTS)))
    newest = primary_policy == "prefer_newest"
    chosen: dict[tuple[int, str], tuple[tuple[int, int], str]] = {}
    for row in rows:
        when = (-row.last_event_id, row.last_position) if newest else (row.first_event_id, row.first_position)
        key = (row.contact_id, row.field)
        if key not in chosen or when < chosen[key][0]:
            chosen[key] = (when, row.value)
    return {key: value for key, (_, value) in chosen.items()}


def interaction_snapshot(row: StoredInteraction) -> InteractionSnapshot:
    details: dict[str, Any] = row.details or {}
    page = details.get("page") or {}
    return InteractionSnapshot(
        kind=row.kind, provider=row.provider, source=row.source, interaction_id=row.id,
        conversation_id=row.conversation_id, external_id=row.external_id, subject=row.subject, state=row.state,
        occurred_at=row.occurred_at,
        transcript=tuple({"author": m.get("author"), "author_name": m.get("author_name"), "text": m.get("text"),
                          "at": _moment(m.get("at"))} for m in details.get("transcript") or []),
        page_url=page.get("url") if isinstance(page, dict) else None,
        utm={str(k): str(v) for k, v in (details.get("utm") or {}).items()},
        tags=tuple(details.get("tags") or ()), lead=details.get("lead") or None,
    )


def _moment(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
