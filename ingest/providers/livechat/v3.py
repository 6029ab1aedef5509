"""LiveChat platform webhooks (v3.x): one function per action, each turning the envelope into canonical records.

A v3 *chat* is the customer's lasting conversation; each *thread* is one session in it, opened by `incoming_chat`
and closed by `chat_deactivated`. A conversation here is therefore a thread (`livechat:<chat_id>:<thread_id>`), so a
customer's second session is a new conversation instead of a closed one that could never reopen.
"""
from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from crm_sync.model import (
    Agent, CanonicalRecord, ConversationState, Interaction, InteractionKind, Message, Page,
)
from ingest.providers.base import IgnoreEvent, ParseError
from ingest.providers.livechat.common import PROVIDER, agent_by_id, compact
from ingest.providers.livechat.contacts import (
    PersonDraft, add_form_contacts, add_custom_fields, form_answers,
)
from ingest.providers.livechat.models import (
    ChatDeactivated, ChatEvent, ChatTransferred, Envelope, IncomingChat, IncomingEvent, SessionFieldsUpdated,
    ThreadTagged, User, Visit,
)

CUSTOMER_ID = "livechat.customer_id"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_UTM_KEYS = ("source", "medium", "campaign", "term", "content")
CONTENT_TYPES = ("message", "file", "rich_message")  # what _message reads; any other type is LiveChat's own notice


def parse_v3(body: dict[str, Any]) -> list[CanonicalRecord]:
    envelope = Envelope.model_validate(body)
    action = envelope.action
    if not action:
        raise ParseError("LiveChat v3 webhook with an empty `action`")
    handler = _ACTIONS.get(action)
    if handler is None:
        raise IgnoreEvent(f"LiveChat action {action!r} carries no contact or conversation data to import")
    if not isinstance(envelope.payload, dict):
        raise ParseError(f"LiveChat {action}: `payload` is missing or not a JSON object")
    return [CanonicalRecord(event_type=action, **handler(envelope))]


# --- actions ----------------------------------------------------------------------------------------------------

def _incoming_chat(envelope: Envelope) -> dict:
    chat = IncomingChat.model_validate(envelope.payload).chat
    if chat is None or not chat.id or not chat.thread.id:
        raise ParseError("LiveChat incoming_chat: `payload.chat.id` and `payload.chat.thread.id` are required")
    thread, users = chat.thread, {user.id: user for user in chat.users if user.id}
    customer = next((user for user in chat.users if user.type == "customer"), None)
    draft = _customer_draft(customer)
    forms = [event for event in thread.events if event.type == "filled_form"]
    for form in forms:
        add_form_contacts(draft, form.fields)
    visit = customer.visit if customer else Visit()
    interaction = _interaction(
        envelope, InteractionKind.CHAT, chat.id, thread.id,
        state=ConversationState.QUEUED if thread.queue else ConversationState.OPEN,
        external_id=thread.id,
        occurred_at=thread.created_at or next((e.created_at for e in thread.events if e.created_at), None),
        transcript=[m for m in (_message(event, users) for event in thread.events) if m is not None],
        agent=_chat_agent(chat.users),
        page=_current_page(visit),
        utm=_utm(visit, draft.attributes),
        geo=visit.geolocation.model_dump(exclude_none=True),
        tags=thread.tags,
        extra={"prechat": _merged_answers(forms), "referrer": visit.referrer, "ip": visit.ip,
               "user_agent": visit.user_agent, "restricted_access": thread.restricted_access,
               "queued_at": thread.queue.queued_at.isoformat() if thread.queue and thread.queue.queued_at else None},
    )
    return {"person": draft.build(), "interaction": interaction}


def _incoming_event(envelope: Envelope) -> dict:
    payload = IncomingEvent.model_validate(envelope.payload)
    event = payload.event
    if event is None:
        raise ParseError("LiveChat incoming_event: `payload.event` is missing")
    if event.type == "filled_form":
        return _filled_form(envelope, payload.chat_id, payload.thread_id, event)
    message = _message(event, {})
    if message is None:
        raise IgnoreEvent(_not_content(event))
    draft = PersonDraft()
    if message.author == "visitor":
        draft.add_identity(CUSTOMER_ID, event.author_id)
    interaction = _interaction(
        envelope, InteractionKind.MESSAGE, payload.chat_id, payload.thread_id,
        external_id=event.id, occurred_at=event.created_at, transcript=[message],
        agent=agent_by_id(event.author_id) if message.author == "agent" else None,
    )
    return {"person": draft.build(), "interaction": interaction}


def _filled_form(envelope: Envelope, chat_id: str | None, thread_id: str | None, event: ChatEvent) -> dict:
    """A pre-chat (or post-chat) form: the customer's own answers, so name/e-mail/phone update the contact."""
    draft = PersonDraft()
    if _role(event.author_id, {}) == "visitor":
        draft.add_identity(CUSTOMER_ID, event.author_id)
    add_form_contacts(draft, event.fields)
    interaction = _interaction(
        envelope, InteractionKind.CONTACT_UPDATE, chat_id, thread_id,
        external_id=event.id, occurred_at=event.created_at,
        extra={"form_type": event.form_type, "answers": form_answers(event.fields)},
    )
    return {"person": draft.build(), "interaction": interaction}


def _chat_deactivated(envelope: Envelope) -> dict:
    payload = ChatDeactivated.model_validate(envelope.payload)
    closer = _role(payload.user_id, {}) if payload.user_id else None
    draft = PersonDraft()
    if closer == "visitor":
        draft.add_identity(CUSTOMER_ID, payload.user_id)
    interaction = _interaction(
        envelope, InteractionKind.CHAT, payload.chat_id, payload.thread_id,
        state=ConversationState.CLOSED, external_id=payload.thread_id,
        agent=agent_by_id(payload.user_id) if closer == "agent" else None,
        # Without user_id LiveChat's router closed the thread (inactivity, or the customer left).
        extra={"closed_by": payload.user_id or "router"},
    )
    return {"person": draft.build(), "interaction": interaction}


def _chat_transferred(envelope: Envelope) -> dict:
    payload = ChatTransferred.model_validate(envelope.payload)
    if not payload.thread_id:
        raise IgnoreEvent("LiveChat chat_transferred for an inactive chat (no thread_id): no session to assign")
    target = payload.transferred_to
    interaction = _interaction(
        envelope, InteractionKind.CHAT, payload.chat_id, payload.thread_id,
        state=ConversationState.QUEUED if payload.queue else ConversationState.ASSIGNED,
        external_id=payload.thread_id,
        agent=agent_by_id(target.agent_ids[0]) if target.agent_ids else None,
        extra={"transfer_reason": payload.reason, "requester_id": payload.requester_id,
               "agent_ids": target.agent_ids, "group_ids": target.group_ids},
    )
    return {"interaction": interaction}


def _thread_tagged(envelope: Envelope) -> dict:
    payload = ThreadTagged.model_validate(envelope.payload)
    if not payload.tag:
        raise ParseError("LiveChat thread_tagged: `payload.tag` is missing or empty")
    interaction = _interaction(envelope, InteractionKind.CHAT, payload.chat_id, payload.thread_id,
                               external_id=payload.thread_id, tags=[payload.tag])
    return {"interaction": interaction}


def _thread_untagged(envelope: Envelope) -> dict:
    raise IgnoreEvent("LiveChat thread_untagged: a conversation's tags are only ever added, never removed")


def _session_fields_updated(envelope: Envelope) -> dict:
    """Sent once per active chat of the customer; deduplicated by customer and fields, so no conversation here."""
    payload = SessionFieldsUpdated.model_validate(envelope.payload)
    if not payload.id:
        raise ParseError("LiveChat customer_session_fields_updated: `payload.id` (the customer id) is missing")
    draft = PersonDraft()
    draft.add_identity(CUSTOMER_ID, payload.id)
    add_custom_fields(draft, payload.session_fields)
    account = {"organization_id": envelope.organization_id, "license_id": envelope.license_id}
    interaction = Interaction(kind=InteractionKind.CONTACT_UPDATE, provider=PROVIDER, extra=compact(account))
    return {"person": draft.build(), "interaction": interaction}


_ACTIONS: dict[str, Callable[[Envelope], dict]] = {
    "incoming_chat": _incoming_chat,
    "incoming_event": _incoming_event,
    "chat_deactivated": _chat_deactivated,
    "chat_transferred": _chat_transferred,
    "thread_tagged": _thread_tagged,
    "thread_untagged": _thread_untagged,
    "customer_session_fields_updated": _session_fields_updated,
}


# --- pieces -----------------------------------------------------------------------------------------------------

def _interaction(envelope: Envelope, kind: InteractionKind, chat_id: str | None, thread_id: str | None,
                 extra: dict | None = None, **fields: Any) -> Interaction:
    if not chat_id or not thread_id:
        raise ParseError(f"LiveChat {envelope.action}: `chat_id` and `thread_id` are required")
    ids = {"chat_id": chat_id, "thread_id": thread_id, "organization_id": envelope.organization_id,
           "license_id": envelope.license_id}
    return Interaction(kind=kind, provider=PROVIDER, conversation_id=f"{PROVIDER}:{chat_id}:{thread_id}",
                       extra=compact({**ids, **(extra or {})}), **fields)


def _customer_draft(customer: User | None) -> PersonDraft:
    draft = PersonDraft()
    if customer is not None:
        draft.add_name(customer.name)
        draft.add_email(customer.email)
        draft.add_phone(customer.phone_number)
        draft.add_identity(CUSTOMER_ID, customer.id)
        add_custom_fields(draft, customer.session_fields)
    return draft


def _role(author_id: str | None, users: dict[str, User]) -> str:
    """Who wrote an event. Webhooks other than incoming_chat carry no user list, so the id's shape decides:
    agents are identified by their e-mail, customers by a UUID, bots by a plain hex id."""
    user_type = users[author_id].type if author_id in users else None
    if user_type == "customer" or (user_type is None and _UUID.match(author_id or "")):
        return "visitor"
    if user_type == "agent" or (user_type is None and "@" in (author_id or "")):
        return "agent"
    return "bot" if author_id else "system"


def _not_content(event: ChatEvent) -> str:
    """Why an incoming_event is ignored: a notice of LiveChat's own, or a message with nothing in it."""
    if event.type is None:
        return "LiveChat incoming_event without a `type`: not conversation content"
    if event.type in CONTENT_TYPES:
        return f"LiveChat incoming_event of type {event.type!r} without text: nothing to record"
    return f"LiveChat incoming_event of type {event.type!r} is not conversation content"


def _message(event: ChatEvent, users: dict[str, User]) -> Message | None:
    """Conversation content only: messages, files and rich messages; LiveChat's own system notices are not."""
    if event.type == "message":
        text = event.text
    elif event.type == "file":
        text = " ".join(part for part in (event.name, event.url) if part) or None
    elif event.type == "rich_message":
        text = "\n".join(str(element.get(key)) for element in event.elements for key in ("title", "subtitle")
                         if element.get(key)) or None
    else:
        return None
    if text is None:
        return None
    author_name = users[event.author_id].name if event.author_id in users else None
    return Message(author=_role(event.author_id, users), text=text, at=event.created_at, external_id=event.id,
                   author_name=author_name)


def _chat_agent(users: list[User]) -> Agent | None:
    agents = [user for user in users if user.type == "agent"]
    agent = next((user for user in agents if user.present), agents[0] if agents else None)
    if agent is None:
        return None
    return Agent(id=agent.id, name=agent.name, email=agent.email or (agent.id if "@" in (agent.id or "") else None))


def _current_page(visit: Visit) -> Page | None:
    pages = [page for page in visit.last_pages if page.url]
    return Page(url=pages[-1].url, title=pages[-1].title) if pages else None


def _utm(visit: Visit, session_attributes: dict[str, Any]) -> dict[str, str]:
    """UTM tags of the landing page (the first visited page that has them), else session fields named utm_*."""
    for page in visit.last_pages:
        query = _query(page.url or "")
        utm = {key: query[f"utm_{key}"] for key in _UTM_KEYS if query.get(f"utm_{key}")}
        if utm:
            return utm
    return {key: str(session_attributes[f"utm_{key}"]) for key in _UTM_KEYS if session_attributes.get(f"utm_{key}")}


def _query(url: str) -> dict[str, str]:
    try:
        return dict(reversed(parse_qsl(urlsplit(url).query)))  # the first of repeated parameters wins
    except ValueError:  # a malformed URL (an unclosed IPv6 bracket) has no tags to give, it is not an error
        return {}


def _merged_answers(forms: list[ChatEvent]) -> dict[str, str]:
    answers: dict[str, str] = {}
    for form in forms:
        answers.update(form_answers(form.fields))
    return answers
