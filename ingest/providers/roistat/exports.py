"""Roistat reading our data: `import_scheme`, `export` (orders) and `export_clients`, answered from our own store.

An order is a Roistat lead we stored: its `id` is the order_id we answered for it (the lead's first stored event), its
`client_id` the contact the lead resolved to, its `status` the interaction's conversation state. We keep no sales
managers, prices or costs, so `managers` is empty and orders carry no `price`/`cost`: Roistat then takes revenue from
wherever the user records it, instead of from a zero we would invent.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_sync.contacts import ContactCard, InteractionSummary, get_cards, list_interactions
from crm_sync.model import ConversationState, InteractionKind
from ingest.events import raw_request_of
from ingest.providers.roistat.params import LeadParams, PageParams, merged_params
from ingest.providers.roistat.records import PROVIDER
from ingest.schema import Event

STATUS_NAMES = {
    ConversationState.OPEN: "Новая заявка",
    ConversationState.QUEUED: "В очереди",
    ConversationState.ASSIGNED: "В работе",
    ConversationState.CLOSED: "Закрыта",
}
LEAD_ID_FIELD = "roistat_lead_id"
CRM_LINKS_FIELD = "crm_links"
ORDER_FIELDS = (
    {"id": LEAD_ID_FIELD, "name": "Номер заявки в Roistat"},
    {"id": CRM_LINKS_FIELD, "name": "Карточка в CRM"},
)
# export_clients walks the leads in chunks of this size to find their distinct contacts.
CONTACT_WALK_CHUNK = 1000


def scheme() -> dict[str, Any]:
    return {
        "statuses": [{"id": state.value, "name": STATUS_NAMES[state]} for state in ConversationState],
        "fields": [dict(field) for field in ORDER_FIELDS],
        "managers": [],
    }


def export_orders(session: Session, source: str, page: PageParams) -> dict[str, Any]:
    total, leads = _leads(session, source, page.changed_since, page.start, page.page_limit)
    cards = get_cards(session, sorted({lead.contact_id for lead in leads if lead.contact_id is not None}))
    visits = _visits(session, [lead.event_id for lead in leads])
    orders = [_order(lead, cards.get(lead.contact_id), visits.get(lead.event_id)) for lead in leads]
    return {**scheme(), "orders": orders, "pagination": {"total_count": total, "limit": page.page_limit}}


def export_clients(session: Session, source: str, page: PageParams) -> dict[str, Any]:
    """The contacts of the leads changed since `date`, one page of them; merged contacts appear once per page."""
    contact_ids = _contacts_of_leads(session, source, page.changed_since)
    window = contact_ids[page.start:page.start + page.page_limit]
    cards = get_cards(session, window)
    clients: dict[int, dict[str, Any]] = {}
    for contact_id in window:
        card = cards.get(contact_id)
        if card is not None and card.contact_id not in clients:
            clients[card.contact_id] = _client(card)
    return {"clients": list(clients.values()),
            "pagination": {"total_count": len(contact_ids), "limit": page.page_limit}}


def _leads(session: Session, source: str, since: datetime | None, offset: int, limit: int
           ) -> tuple[int, list[InteractionSummary]]:
    return list_interactions(session, provider=PROVIDER, source=source, kind=InteractionKind.LEAD.value,
                             changed_since=since, offset=offset, limit=limit)


def _contacts_of_leads(session: Session, source: str, since: datetime | None) -> list[int]:
    """Distinct contact ids in lead order: a stable list (and count) while nothing new arrives."""
    seen: dict[int, None] = {}
    offset = 0
    while True:
        total, leads = _leads(session, source, since, offset, CONTACT_WALK_CHUNK)
        seen.update(dict.fromkeys(lead.contact_id for lead in leads if lead.contact_id is not None))
        offset += len(leads)
        if not leads or offset >= total:
            return list(seen)


def _visits(session: Session, event_ids: list[int]) -> dict[int, str | None]:
    """The Roistat visit of each lead, read back from its stored request (the contact store keeps no visit)."""
    if not event_ids:
        return {}
    events = session.scalars(select(Event).where(Event.id.in_(event_ids)))
    return {event.id: LeadParams.model_validate(merged_params(raw_request_of(event))).visit for event in events}


def _order(lead: InteractionSummary, card: ContactCard | None, visit: str | None) -> dict[str, Any]:
    fields = {LEAD_ID_FIELD: lead.external_id, CRM_LINKS_FIELD: " ".join(card.crm_links.values()) if card else None}
    created = lead.occurred_at or lead.updated_at
    return {
        "id": str(lead.event_id),
        "name": lead.subject or f"Заявка Roistat {lead.external_id or lead.event_id}",
        "date_create": str(int(created.timestamp())),
        "status": str(lead.state or ConversationState.OPEN.value),
        "roistat": visit.strip() if visit else None,
        "client_id": str(card.contact_id) if card else _text(lead.contact_id),
        "manager_id": None,
        "fields": {key: value for key, value in fields.items() if value},
    }


def _client(card: ContactCard) -> dict[str, Any]:
    email = card.emails[0] if card.emails else None
    phone = _roistat_phone(card.phones[0]) if card.phones else None
    return {
        "id": str(card.contact_id),
        "name": card.name or email or phone or f"Контакт {card.contact_id}",
        "phone": phone,
        "email": email,
        "company": None,
        "birth_date": None,
    }


def _roistat_phone(e164: str) -> str:
    """Roistat writes phones as bare digits ("79012223355"); an extension has no place there."""
    return e164.split(";", 1)[0].lstrip("+")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
