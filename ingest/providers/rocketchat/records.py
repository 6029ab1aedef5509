"""Rocket.Chat webhook bodies → canonical records.

Each event is read on its own: nothing assumes that an earlier event of the room arrived (a `Message` may come before
its `LivechatSessionStart`, a retried start after the close). Every room event carries the same conversation id,
`rocketchat:<room _id>`, and the state it reports; the contact store keeps a conversation's state moving forward.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterator

from crm_sync.model import (
    Agent,
    CanonicalRecord,
    ConversationState,
    Interaction,
    InteractionKind,
    Message,
    Page,
    Person,
    ProviderIdentity,
)
from ingest.providers.rocketchat.payload import ChatMessage, OfflineMessage, RocketUser, RoomEvent, Visitor

PROVIDER = "rocketchat"

# type → (kind, state the event reports)
ROOM_EVENTS: dict[str, tuple[InteractionKind, ConversationState | None]] = {
    "LivechatSessionStart": (InteractionKind.CHAT, ConversationState.OPEN),
    "LivechatSessionQueued": (InteractionKind.CHAT, ConversationState.QUEUED),
    "LivechatSessionTaken": (InteractionKind.CHAT, ConversationState.ASSIGNED),
    "LivechatSessionForwarded": (InteractionKind.CHAT, ConversationState.ASSIGNED),
    "LivechatSession": (InteractionKind.CHAT, ConversationState.CLOSED),
    "LivechatEdit": (InteractionKind.CHAT, ConversationState.CLOSED),  # sent only for closed rooms
    "Message": (InteractionKind.MESSAGE, None),
    "LeadCapture": (InteractionKind.CONTACT_UPDATE, None),
}
OFFLINE_MESSAGE = "LivechatOfflineMessage"


def conversation_id(room_id: str) -> str:
    return f"{PROVIDER}:{room_id}"


def room_record(event: RoomEvent) -> CanonicalRecord:
    kind, state = ROOM_EVENTS[event.type]
    chat = [m for m in event.messages if not m.navigation]
    interaction = Interaction(
        kind=kind,
        provider=PROVIDER,
        conversation_id=conversation_id(event.id),
        external_id=event.messages[0].id if kind is InteractionKind.MESSAGE and len(event.messages) == 1 else None,
        occurred_at=_occurred_at(event),
        state=state,
        subject=event.topic,
        transcript=[_message(m, event.visitor) for m in chat],
        agent=_message_agent(event, chat) if kind is InteractionKind.MESSAGE else _room_agent(event),
        page=_last_page(event.messages),
        tags=event.tags,
        extra=_room_extra(event, chat),
    )
    return CanonicalRecord(event_type=event.type, person=visitor_person(event.visitor), interaction=interaction)


def offline_record(event: OfflineMessage, external_id: str) -> CanonicalRecord:
    visitor = event.visitor
    interaction = Interaction(
        kind=InteractionKind.OFFLINE_MESSAGE,
        provider=PROVIDER,
        external_id=external_id,
        occurred_at=event.sent_at,
        transcript=[Message(author="visitor", text=event.message or "", at=event.sent_at, author_name=visitor.name)],
        extra=_without_blanks({"department": event.department, "host": event.host}),
    )
    person = Person(name=visitor.name, emails=visitor.email, phones=visitor.phone)
    return CanonicalRecord(event_type=event.type, person=person, interaction=interaction)


def visitor_person(visitor: Visitor) -> Person:
    identities = [ProviderIdentity(kind=f"{PROVIDER}.{what}", value=value)
                  for what, value in (("visitor_id", visitor.id), ("visitor_token", visitor.token)) if value]
    attributes = _without_blanks({
        "username": visitor.username, "department_id": visitor.department, "ip": visitor.ip, "os": visitor.os,
        "browser": visitor.browser, "custom_fields": visitor.custom_fields,
    })
    return Person(name=visitor.name, emails=visitor.email, phones=visitor.phone, identities=identities,
                  attributes=attributes)


# --- messages ------------------------------------------------------------------------------------------------------

def _message(message: ChatMessage, visitor: Visitor) -> Message:
    return Message(author=_author(message, visitor), text=message_text(message), at=message.ts,
                   external_id=message.id, author_name=message.u.name or message.u.username or message.username)


def _author(message: ChatMessage, visitor: Visitor) -> str:
    """The server marks every message not written under the visitor's username with `agentId` (bots included)."""
    if visitor.id and message.u.id == visitor.id:
        return "visitor"
    if message.agent_id or (visitor.id and message.u.id and message.u.id != visitor.id):
        return "agent"
    return "visitor"


def message_text(message: ChatMessage) -> str:
    """`msg`, or the text inside UI blocks (the server sends `JSON.stringify(blocks)` when `msg` is empty), plus
    a line per uploaded file and its description."""
    blocks = _blocks_in(message.msg)
    if blocks is None and not message.msg:
        blocks = message.blocks or None
    body = "\n".join(_block_texts(blocks)) if blocks is not None else message.msg or ""
    lines = [body, *(f"File: {upload['name']}" for upload in _files(message))]
    for attachment in message.attachments:
        description = _text_of(attachment.get("description"))
        if description and description not in lines:
            lines.append(description)
    return "\n".join(line for line in lines if line)


def _blocks_in(msg: str | None) -> list | None:
    if not msg or not msg.lstrip().startswith("["):
        return None
    try:
        value = json.loads(msg)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, dict) and "type" in item for item in value):
        return value
    return None


def _block_texts(node: Any) -> Iterator[str]:
    """Text objects (`{"type": "plain_text"|"mrkdwn", "text": …}`) anywhere in the blocks, in order."""
    if isinstance(node, list):
        for item in node:
            yield from _block_texts(item)
    elif isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            if node["text"].strip():
                yield node["text"]
            return
        for value in node.values():
            yield from _block_texts(value)


def _files(message: ChatMessage) -> list[dict[str, Any]]:
    if not message.file:
        return []
    attachment = next((a for a in message.attachments if a.get("title_link")), {})
    return [_without_blanks({
        "message_id": message.id,
        "name": _text_of(message.file.get("name")) or _text_of(attachment.get("title")) or "upload",
        "type": _text_of(message.file.get("type")),
        "size": message.file_upload.get("size") or message.file.get("size"),
        "url": _text_of(message.file_upload.get("publicFilePath")) or _text_of(attachment.get("title_link")),
    })]


def _last_page(messages: list[ChatMessage]) -> Page | None:
    """Navigation history messages (sent when the admin enables them) tell the page the visitor is on."""
    for message in reversed(messages):
        page = message.navigation.get("page")
        if isinstance(page, dict):
            location = page.get("location") if isinstance(page.get("location"), dict) else {}
            url = _text_of(location.get("href")) or _text_of(message.msg)
            if url:
                return Page(url=url, title=_text_of(page.get("title")))
    return None


# --- room details --------------------------------------------------------------------------------------------------

def _occurred_at(event: RoomEvent) -> datetime | None:
    served = event.served_by.ts if event.served_by else None
    return {
        "LivechatSessionStart": event.created_at,
        "LivechatSessionQueued": event.last_message_at or event.created_at,
        "LivechatSessionTaken": served or event.last_message_at,
        "LivechatSessionForwarded": served or event.last_message_at,
        "LivechatSession": event.closed_at or event.last_message_at,
        "Message": max((m.edited_at or m.ts for m in event.messages if m.edited_at or m.ts),
                       default=event.last_message_at),
        "LeadCapture": event.last_message_at,
    }.get(event.type)


def _room_agent(event: RoomEvent) -> Agent | None:
    """The room's agent; for a take or a forward, `servedBy` is the authority on who it is now."""
    served, agent = event.served_by, event.agent
    if agent and (agent.id or agent.name) and (not served or not served.id or served.id == agent.id):
        return _agent(agent)
    return _agent(served) if served and served.id else None


def _message_agent(event: RoomEvent, chat: list[ChatMessage]) -> Agent | None:
    for message in chat:
        if _author(message, event.visitor) == "agent":
            writer_id = message.agent_id or message.u.id
            if event.agent and event.agent.id == writer_id:
                return _agent(event.agent)
            return Agent(id=writer_id, name=message.u.name or message.u.username or message.username)
    return _room_agent(event)


def _agent(user: RocketUser) -> Agent:
    return Agent(id=user.id, name=user.name or user.username, email=user.email)


def _room_extra(event: RoomEvent, chat: list[ChatMessage]) -> dict[str, Any]:
    closing = next((m for m in chat if m.closing_message), None)
    return _without_blanks({
        "label": event.label,
        "department_id": event.department_id,
        "custom_fields": event.custom_fields,
        "created_at": event.created_at.isoformat() if event.created_at else None,
        "closer": event.closer,
        "closed_by": event.closed_by.id if event.closed_by else None,
        "previous_agent_id": event.old_served_by.id if event.old_served_by else None,
        "previous_department_id": event.old_department_id,
        "closing_comment": message_text(closing) if closing else None,
        "edited_message": bool(event.type == "Message" and any(m.edited_at for m in chat)),
        "files": [upload for message in chat for upload in _files(message)],
        "agent_username": event.agent.username if event.agent else None,
    })


def _text_of(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _without_blanks(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", [], {}, False)}
