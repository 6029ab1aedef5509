"""Lenient models of LiveChat's webhook bodies: v3.x platform webhooks and the legacy (v2) ones.

LiveChat omits optional keys, sends "" for unanswered fields, numbers where strings are usual (`license_id`, group
ids) and may add fields at any time. These models keep what we use, ignore the rest, turn blanks into None and drop
list items of the wrong shape, so only a body that lacks what an event cannot do without fails to parse.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def as_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _objects(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _texts(value: Any) -> list[str]:
    items = value if isinstance(value, list) else []
    return [text for text in (as_text(item) for item in items) if text]


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _timestamp(value: Any) -> datetime | None:
    """RFC 3339 strings (v3) or unix seconds (v2, sometimes quoted); anything else is unknown time, not an error."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        if isinstance(value, str) and value.strip().isdigit():  # isdigit() also passes "²", which int() refuses
            value = int(value)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=timezone.utc)
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return None


Text = Annotated[str | None, BeforeValidator(as_text)]
Texts = Annotated[list[str], BeforeValidator(_texts)]
Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
Mapping = Annotated[dict[str, Any], BeforeValidator(_object)]
Dicts = Annotated[list[dict], BeforeValidator(_objects), Field(default_factory=list)]
Values = Annotated[list[Any], BeforeValidator(lambda v: v if isinstance(v, list) else []), Field(default_factory=list)]
Flag = Annotated[bool | None, BeforeValidator(lambda v: v if isinstance(v, bool) else None)]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def objects(model: type[Lenient]) -> Any:
    """A list of `model`, skipping items that are not JSON objects; absent means empty."""
    return Annotated[list[model], BeforeValidator(_objects), Field(default_factory=list)]


def nested(model: type[Lenient]) -> Any:
    """A `model` whose absence (or a value of another type) means all its fields are unknown."""
    return Annotated[model, BeforeValidator(_object), Field(default_factory=model)]


def optional(model: type[Lenient]) -> Any:
    """A `model` whose absence means something (a chat not in a queue, a ticket with no assignee)."""
    return Annotated[model | None, BeforeValidator(lambda v: v if isinstance(v, dict) else None), Field(default=None)]


# --- v3 ---------------------------------------------------------------------------------------------------------

class Geolocation(Lenient):
    country: Text = None
    country_code: Text = None
    region: Text = None
    city: Text = None
    timezone: Text = None
    latitude: Text = None
    longitude: Text = None


class VisitedPage(Lenient):
    url: Text = None
    title: Text = None


class Visit(Lenient):
    ip: Text = None
    user_agent: Text = None
    referrer: Text = None
    geolocation: nested(Geolocation)
    last_pages: objects(VisitedPage)


class User(Lenient):
    """A chat user: `customer` (UUID id), `agent` (id = the agent's e-mail) or a bot."""

    id: Text = None
    type: Text = None
    name: Text = None
    email: Text = None
    phone_number: Text = None
    session_fields: Dicts
    visit: nested(Visit)
    present: Flag = None


class FormField(Lenient):
    """One answered field of a pre-chat/post-chat form (v3 `fields[]`, v2 `pre_chat_survey[]`)."""

    type: Text = None
    label: Text = None
    answer: Any = None
    answers: Values


class ChatEvent(Lenient):
    id: Text = None
    type: Text = None
    author_id: Text = None
    created_at: Timestamp = None
    text: Text = None
    # filled_form
    form_type: Text = None
    fields: objects(FormField)
    # file
    name: Text = None
    url: Text = None
    # rich_message
    elements: Dicts


class Queue(Lenient):
    queued_at: Timestamp = None


class Thread(Lenient):
    id: Text = None
    created_at: Timestamp = None
    events: objects(ChatEvent)
    tags: Texts = Field(default_factory=list)
    queue: optional(Queue)
    restricted_access: Text = None


class Chat(Lenient):
    id: Text = None
    users: objects(User)
    thread: nested(Thread)


class IncomingChat(Lenient):
    chat: optional(Chat)


class ThreadRef(Lenient):
    chat_id: Text = None
    thread_id: Text = None


class IncomingEvent(ThreadRef):
    event: optional(ChatEvent)


class ChatDeactivated(ThreadRef):
    user_id: Text = None


class TransferTarget(Lenient):
    agent_ids: Texts = Field(default_factory=list)
    group_ids: Texts = Field(default_factory=list)


class ChatTransferred(ThreadRef):
    requester_id: Text = None
    reason: Text = None
    transferred_to: nested(TransferTarget)
    queue: optional(Queue)


class ThreadTagged(ThreadRef):
    tag: Text = None


class SessionFieldsUpdated(Lenient):
    id: Text = None
    active_chat: nested(ThreadRef)
    session_fields: Dicts


class Envelope(Lenient):
    """What every v3 webhook carries around its `payload`."""

    action: Text = None
    organization_id: Text = None
    license_id: Text = None  # v3.2/v3.3 send an integer licence number instead of organization_id
    payload: Any = None


# --- legacy v2 --------------------------------------------------------------------------------------------------

class LegacyMessage(Lenient):
    user_type: Text = None
    author_name: Text = None
    agent_id: Text = None
    text: Text = None
    timestamp: Timestamp = None


class LegacyChat(Lenient):
    id: Text = None
    started_timestamp: Timestamp = None
    ended_timestamp: Timestamp = None
    messages: objects(LegacyMessage)
    tags: Texts = Field(default_factory=list)


class LegacyVisitor(Lenient):
    id: Text = None
    name: Text = None
    email: Text = None
    custom_variables: Dicts


class LegacyTicketAuthor(Lenient):
    id: Text = None
    name: Text = None
    type: Text = None


class LegacyTicketEvent(Lenient):
    author: nested(LegacyTicketAuthor)
    date: Timestamp = None
    is_private: Flag = None
    message: Text = None
    type: Text = None


class LegacyRequester(Lenient):
    mail: Text = None
    name: Text = None


class LegacyTicket(Lenient):
    id: Text = None
    subject: Text = None
    status: Text = None
    requester: nested(LegacyRequester)
    assignee: optional(LegacyTicketAuthor)
    events: objects(LegacyTicketEvent)
    tags: Texts = Field(default_factory=list)
    source: Mapping = Field(default_factory=dict)


class LegacyWebhook(Lenient):
    event_type: Text = None
    license_id: Text = None
    chat: optional(LegacyChat)
    visitor: optional(LegacyVisitor)
    pre_chat_survey: objects(FormField)
    ticket: optional(LegacyTicket)
