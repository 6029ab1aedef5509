"""Canonical records for Roistat's event actions: `lead`, `message`, `task` and `call`.

Values stay as Roistat wrote them (phones in any format, multi-line text); the contact store normalises.
"""
from __future__ import annotations

from typing import Any

from crm_sync.model import (
    Agent,
    CanonicalRecord,
    ConversationState,
    Interaction,
    InteractionKind,
    Lead,
    Message,
    Page,
    Person,
    ProviderIdentity,
)
from ingest.providers.base import ParseError
from ingest.providers.roistat.params import CallParams, LeadParams, MessageParams, TaskParams, decode_data, utc_time

PROVIDER = "roistat"
VISIT_IDENTITY = "roistat.visit"
# The order_id we answered a lead with (its event's id): Roistat's notes, tasks and calls name the deal by it.
ORDER_IDENTITY = "roistat.order"


def lead_record(params: dict[str, str], order_id: str | None = None) -> CanonicalRecord:
    """`order_id`: what Roistat was answered for this lead, when known (the stored event's id)."""
    lead = LeadParams.model_validate(params)
    data, data_problem = decode_data(lead.data)
    extra: dict[str, Any] = {}
    if data_problem:
        extra.update(data_text=lead.data, data_problem=data_problem)
    occurred_at = utc_time(lead.created_date)
    if lead.created_date and occurred_at is None:
        extra["created_date_text"] = lead.created_date
    interaction = Interaction(
        kind=InteractionKind.LEAD,
        provider=PROVIDER,
        external_id=lead.lead_id,
        occurred_at=occurred_at,
        state=ConversationState.OPEN,
        subject=_clean(lead.title),
        agent=Agent(id=lead.manager_id) if lead.manager_id else None,
        page=_landing_page(data),
        utm=_utm(data),
        lead=Lead(external_id=lead.lead_id, visit=_clean(lead.visit), title=_clean(lead.title), text=lead.text,
                  data=data),
        extra=extra,
    )
    person = Person(name=_clean(lead.name), emails=lead.email, phones=lead.phone,
                    identities=_visit(lead.visit) + _order(order_id))
    return CanonicalRecord(event_type="lead", person=person, interaction=interaction)


def message_record(params: dict[str, str]) -> CanonicalRecord:
    """A note Roistat adds to a deal it already sent us; `leadId` is the order_id we answered for that deal."""
    message = MessageParams.model_validate(params)
    if message.lead_id is None:
        raise ParseError("a message without leadId: there is no order to attach it to")
    if message.note is None and message.title is None:
        raise ParseError(f"a message for order {message.lead_id} with neither title nor text")
    order_id = message.lead_id.strip()
    interaction = Interaction(
        kind=InteractionKind.NOTE,
        provider=PROVIDER,
        conversation_id=order_conversation(order_id),
        subject=_clean(message.title),
        transcript=[Message(author="system", text=message.note)] if message.note else [],
        extra={"order_id": order_id},
    )
    return CanonicalRecord(event_type="message", person=Person(identities=_order(order_id)), interaction=interaction)


def task_record(params: dict[str, str]) -> CanonicalRecord:
    task = TaskParams.model_validate(params)
    if task.element_id is None:
        raise ParseError("a task without elementId: there is no order to attach it to")
    order_id = task.element_id.strip()
    extra: dict[str, Any] = {"order_id": order_id}
    if task.deadline:
        deadline = utc_time(task.deadline)
        extra["deadline"] = deadline.isoformat() if deadline else task.deadline
    interaction = Interaction(
        kind=InteractionKind.NOTE,
        provider=PROVIDER,
        conversation_id=order_conversation(order_id),
        subject="Задача",
        transcript=[Message(author="system", text=task.text)] if task.text else [],
        extra=extra,
    )
    return CanonicalRecord(event_type="task", person=Person(identities=_order(order_id)), interaction=interaction)


def call_record(params: dict[str, str]) -> CanonicalRecord:
    call = CallParams.model_validate(params)
    if call.id is None and call.caller is None:
        raise ParseError("a call with neither id nor caller")
    details = {"callee": call.callee, "status": call.status, "duration": call.duration, "file_url": call.file_url,
               "marker": call.marker, "order_id": call.order_id}
    interaction = Interaction(
        kind=InteractionKind.CALL,
        provider=PROVIDER,
        external_id=_clean(call.id),
        occurred_at=utc_time(call.date),
        extra={key: value for key, value in details.items() if value is not None},
    )
    person = Person(phones=call.caller, identities=_visit(call.visit) + _order(_clean(call.order_id)))
    return CanonicalRecord(event_type="call", person=person, interaction=interaction)


def order_conversation(order_id: str) -> str:
    """Notes and tasks name our order, not Roistat's lead: they share one conversation per order."""
    return f"order:{order_id}"


def _visit(visit: str | None) -> list[ProviderIdentity]:
    """The visit number (the roistat_visit cookie); a zero names no visit, so nobody."""
    value = visit.strip() if visit else ""
    return [ProviderIdentity(kind=VISIT_IDENTITY, value=value)] if value.strip("0") else []


def _order(order_id: str | None) -> list[ProviderIdentity]:
    return [ProviderIdentity(kind=ORDER_IDENTITY, value=order_id)] if order_id else []


def _landing_page(data: dict[str, Any]) -> Page | None:
    url = data.get("page")
    return Page(url=url.strip()) if isinstance(url, str) and url.strip() else None


def _utm(data: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in data.items()
            if key.startswith("utm_") and value not in (None, "")}


def _clean(value: str | None) -> str | None:
    return value.strip() if value else None
