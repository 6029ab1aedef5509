"""Legacy LiveChat webhooks (Configuration API v2, set up in Agent App Settings > Integrations > Webhooks).

A v2 *chat* is one session (what v3 calls a thread). Which data types a webhook carries (`chat`, `visitor`,
`pre_chat_survey`) is chosen per webhook in LiveChat, so each one may be absent. Timestamps are unix seconds.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from crm_sync.model import CanonicalRecord, ConversationState, Interaction, InteractionKind, Message, Person
from ingest.providers.base import IgnoreEvent, ParseError
from ingest.providers.livechat.common import PROVIDER, agent_by_id, compact
from ingest.providers.livechat.contacts import PersonDraft, add_form_contacts, add_custom_fields, form_answers
from ingest.providers.livechat.models import LegacyChat, LegacyTicket, LegacyWebhook

VISITOR_ID = "livechat.visitor_id"
_ROLES = {"visitor": "visitor", "agent": "agent"}  # `supervisor` lines are whispers the visitor never saw


def parse_legacy(body: dict[str, Any]) -> list[CanonicalRecord]:
    webhook = LegacyWebhook.model_validate(body)
    event_type = webhook.event_type
    if event_type is None:  # the key is there (the provider routed the body here by it) but blank or not text
        raise IgnoreEvent("legacy LiveChat webhook with an empty `event_type`: nothing to tell what it is about")
    handler = _EVENTS.get(event_type)
    if handler is None:
        raise IgnoreEvent(f"legacy LiveChat event_type {event_type!r} carries no contact or conversation data")
    return [CanonicalRecord(event_type=event_type, person=_person(webhook), interaction=handler(webhook))]


def _chat_started(webhook: LegacyWebhook) -> Interaction:
    return _chat_interaction(webhook, ConversationState.OPEN, webhook.chat and webhook.chat.started_timestamp)


def _chat_ended(webhook: LegacyWebhook) -> Interaction:
    chat = webhook.chat
    return _chat_interaction(webhook, ConversationState.CLOSED,
                             chat and (chat.ended_timestamp or chat.started_timestamp))


def _chat_changed(webhook: LegacyWebhook) -> Interaction:
    """Sent when a chat's tag list changes, whether the chat is still going or long over: no state change."""
    if webhook.chat is None or not webhook.chat.id:
        raise ParseError("legacy LiveChat chat_changed: `chat.id` is required (enable the `chat` data type)")
    return _chat_interaction(webhook, None, webhook.chat.started_timestamp)


def _visitor_queued(webhook: LegacyWebhook) -> Interaction:
    """Only the visitor is known (the queue has no chat id yet)."""
    if webhook.visitor is None:
        raise ParseError("legacy LiveChat visitor_queued: `visitor` is required (enable the `visitor` data type)")
    return Interaction(kind=InteractionKind.CHAT, provider=PROVIDER, state=ConversationState.QUEUED,
                       extra=compact({"license_id": webhook.license_id, "visitor_id": webhook.visitor.id}))


def _ticket_created(webhook: LegacyWebhook) -> Interaction:
    ticket = webhook.ticket
    if ticket is None or not ticket.id:
        raise ParseError("legacy LiveChat ticket_created: `ticket.id` is required (enable the `ticket` data type)")
    assignee = ticket.assignee
    transcript = _ticket_transcript(ticket)
    return Interaction(
        kind=InteractionKind.TICKET, provider=PROVIDER, conversation_id=f"{PROVIDER}:ticket:{ticket.id}",
        external_id=ticket.id, subject=ticket.subject, tags=ticket.tags, transcript=transcript,
        occurred_at=next((event.date for event in ticket.events if event.date), None),
        agent=agent_by_id(assignee.id, assignee.name) if assignee else None,
        extra=compact({"license_id": webhook.license_id, "status": ticket.status,
                       "source_type": ticket.source.get("type"), "source_chat_id": ticket.source.get("id")}),
    )


_EVENTS: dict[str, Callable[[LegacyWebhook], Interaction]] = {
    "chat_started": _chat_started,
    "chat_ended": _chat_ended,
    "chat_changed": _chat_changed,
    "visitor_queued": _visitor_queued,
    "ticket_created": _ticket_created,
}


def _chat_interaction(webhook: LegacyWebhook, state: ConversationState | None,
                      occurred_at: datetime | None) -> Interaction:
    chat = webhook.chat or LegacyChat()
    agent_line = next((m for m in chat.messages if m.user_type == "agent" and m.agent_id), None)
    return Interaction(
        kind=InteractionKind.CHAT, provider=PROVIDER, state=state,
        conversation_id=f"{PROVIDER}:{chat.id}" if chat.id else None, external_id=chat.id,
        occurred_at=occurred_at, transcript=_chat_transcript(chat), tags=chat.tags,
        agent=agent_by_id(agent_line.agent_id, agent_line.author_name) if agent_line else None,
        extra=compact({"license_id": webhook.license_id, "pre_chat_survey": form_answers(webhook.pre_chat_survey),
                       "visitor_id": webhook.visitor.id if webhook.visitor else None}),
    )


def _chat_transcript(chat: LegacyChat) -> list[Message]:
    return [
        Message(author=_ROLES[line.user_type], text=line.text, at=line.timestamp, author_name=line.author_name)
        for line in chat.messages if line.text and line.user_type in _ROLES
    ]


def _ticket_transcript(ticket: LegacyTicket) -> list[Message]:
    """Public ticket messages; private notes stay in LiveChat like supervisor whispers do."""
    return [
        Message(author="agent" if event.author.type == "agent" else "visitor", text=event.message, at=event.date,
                author_name=event.author.name)
        for event in ticket.events
        if event.message and event.type in (None, "message") and not event.is_private
    ]


def _person(webhook: LegacyWebhook) -> Person:
    draft = PersonDraft()
    if webhook.visitor is not None:
        visitor = webhook.visitor
        draft.add_name(visitor.name)
        draft.add_email(visitor.email)
        draft.add_identity(VISITOR_ID, visitor.id)
        add_custom_fields(draft, [{item.get("key"): item.get("value")} for item in visitor.custom_variables
                                   if isinstance(item.get("key"), str)])
    add_form_contacts(draft, webhook.pre_chat_survey)
    if webhook.ticket is not None:
        draft.add_name(webhook.ticket.requester.name)
        draft.add_email(webhook.ticket.requester.mail)
    return draft.build()
