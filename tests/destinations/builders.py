"""Deliveries for the destination tests, and the engine's retry loop in miniature."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from crm_sync.destinations.base import (
    ContactSnapshot,
    DeliveryRequest,
    DeliveryResult,
    Destination,
    InteractionSnapshot,
    TransientError,
)
from tests.fakes.faults import Fault

AT = datetime(2024, 5, 6, 10, 30, tzinfo=timezone.utc)


def contact(contact_id: int = 1, name: str | None = "Ivan Petrov", email: str | None = "ivan@example.com",
            phone: str | None = "+79161234567", **changes) -> ContactSnapshot:
    first, _, last = (name or "").partition(" ")
    return ContactSnapshot(contact_id=contact_id, name=name, first_name=first or None, last_name=last or None,
                           emails=(email,) if email else (), phones=(phone,) if phone else (), **changes)


def chat(interaction_id: int = 10, **changes) -> InteractionSnapshot:
    return InteractionSnapshot(
        kind="chat", provider="jivo", source="jivo-main", interaction_id=interaction_id,
        conversation_id=f"chat-{interaction_id}", state="closed", occurred_at=AT, page_url="https://shop.example/p/1",
        utm={"utm_source": "google"}, transcript=(
            {"author": "visitor", "author_name": "Ivan", "text": "Hello, is the blue one in stock?", "at": AT},
            {"author": "agent", "author_name": "Olga", "text": "Yes, we have two left.", "at": AT},
        ), **changes)


def lead(interaction_id: int = 20, **changes) -> InteractionSnapshot:
    return InteractionSnapshot(kind="lead", provider="roistat", source="roistat-main", interaction_id=interaction_id,
                               external_id=f"R-{interaction_id}", occurred_at=AT,
                               lead={"title": "Callback request", "text": "Call me after 6 pm", "visit": "4012"},
                               **changes)


def delivery(person: ContactSnapshot | None = None, interaction: InteractionSnapshot | None = None,
             key: str | None = None, attempt: int = 1, with_interaction: bool = True) -> DeliveryRequest:
    person = person or contact()
    if interaction is None and with_interaction:
        interaction = chat()
    key = key or f"dest:{person.contact_id}:{interaction.interaction_id if interaction else 'contact'}"
    return DeliveryRequest(idempotency_key=key, attempt=attempt, contact=person, interaction=interaction)


def deliver_until_done(destination: Destination, request: DeliveryRequest, max_attempts: int = 30
                       ) -> tuple[DeliveryResult, int]:
    """Deliver as the engine would: attempt after attempt while the failure is transient. (result, attempts)."""
    for attempt in range(request.attempt, request.attempt + max_attempts):
        try:
            return destination.deliver(replace(request, attempt=attempt)), attempt
        except TransientError:
            continue
    raise AssertionError(f"{request.idempotency_key} still failing after {max_attempts} attempts")


def retry_after_a_lost_write(destination: Destination, fake, write: str, look_up: str, answer: Any,
                             look_ups: int = 1, **fields) -> TransientError:
    """A write that lands but whose answer is lost (the connection drops), then its retry, whose look-up for it
    (`look_ups` of them) is answered 200 with `answer`: the retry's error."""
    fake.faults.script(Fault.after_write(write, then="drop"))
    with pytest.raises(TransientError):
        destination.deliver(delivery(**fields))
    fake.faults.script(*[Fault.respond(200, answer, look_up) for _ in range(look_ups)])
    with pytest.raises(TransientError) as caught:
        destination.deliver(delivery(attempt=2, **fields))
    return caught.value
