"""A JivoEvent as canonical records: who the person is and what happened, whatever the event's shape."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import unquote_plus

from crm_sync.model import (
    Agent, CanonicalRecord, ConversationState, Interaction, InteractionKind, Message, Page, Person, ProviderIdentity,
)
from ingest.providers.base import IgnoreEvent, ParseError
from ingest.providers.jivo import payload
from ingest.providers.jivo.events import CHAT_EVENTS, CRM_CLIENT_EVENTS, CRM_OTHER_EVENTS, crm_category

PROVIDER = "jivo"
MESSAGE_AUTHORS = {"visitor": "visitor", "client": "visitor", "agent": "agent", "bot": "bot"}
CALL_STATES = {
    "start": ConversationState.OPEN,
    "agent_connected": ConversationState.ASSIGNED,
    "client_connected": ConversationState.ASSIGNED,
    "end": ConversationState.CLOSED,
    "error": ConversationState.CLOSED,
}
CLIENT_NUMBER_KINDS = ("client_id", "visitor_number")
# Jivo documents unix seconds; a value this large can only be milliseconds.
MILLISECONDS_THRESHOLD = 10**11


def records_of(event: payload.JivoEvent) -> list[CanonicalRecord]:
    name = event.event_name
    handler = _HANDLERS.get(name)
    if handler is not None:
        return [handler(event)]
    if name in CRM_CLIENT_EVENTS:
        return [_crm_client_record(event, event.crm_client)]
    if name in CRM_OTHER_EVENTS:
        return _crm_other_records(event)
    raise ParseError(f"unknown Jivo event {name!r}: stored; replay it once this version understands it")


# --- the person ---------------------------------------------------------------------------------------------------

def visitor_person(event: payload.JivoEvent) -> Person:
    """The visitor of a channel event, with every id Jivo gives them."""
    visitor = event.visitor or payload.Visitor()
    identities = _client_number_identities(event.client_id, visitor.number)
    attributes = {"category": _title(event.status), "social": visitor.social or None, "user_token": event.user_token}
    return Person(
        name=visitor.name,
        emails=[visitor.email],
        phones=[visitor.phone, event.call.phone if event.call else None],
        identities=identities,
        company=event.organization.name if event.organization else None,
        description=visitor.description,
        attributes=_present(attributes),
    )


def _crm_person(client: payload.CrmClient) -> Person:
    def contacts(kind: str) -> list[str | None]:
        return [c.contact for c in client.contacts if (c.contact_type or "").lower() == kind]

    return Person(
        name=client.name,
        emails=contacts("email"),
        phones=contacts("phone"),
        identities=_client_number_identities(client.client_id),
        company=client.organization.name if client.organization else None,
        description=client.description,
        attributes=_present({"category": _title(client.status), "crm_link": client.crm_link}),
    )


def _client_number_identities(*numbers: str | None) -> list[ProviderIdentity]:
    """Jivo numbers each client of an account once: `client_id` in client and CRM events, `visitor.number` in chat
    events (client_updated carries both, equal). Each number is recorded under both kinds, so that events of either
    shape find one contact, and so do contacts recorded under one kind by earlier versions.

    `user_token` is no identity: it is whatever the site passed to `jivo_api.setUserToken` ("a link | id | any
    data", unchecked by Jivo), and a value two visitors share would merge them and show one the other's card.
    """
    return [ProviderIdentity(kind=f"{PROVIDER}.{kind}", value=number)
            for number in dict.fromkeys(number for number in numbers if number) for kind in CLIENT_NUMBER_KINDS]


# --- what happened ------------------------------------------------------------------------------------------------

def _chat(event: payload.JivoEvent) -> CanonicalRecord:
    """chat_accepted, chat_updated and the legacy chat_assigned: a chat in progress."""
    has_agent = _agent(event.agent) is not None or event.event_name == "chat_assigned"
    interaction = _interaction(event, InteractionKind.CHAT,
                               state=ConversationState.ASSIGNED if has_agent else ConversationState.OPEN,
                               extra={"crm_link": event.assign_to})
    return _record(event, visitor_person(event), interaction)


def _chat_finished(event: payload.JivoEvent) -> CanonicalRecord:
    transcript = _transcript(event)
    chat = event.chat or payload.Chat()
    extra = {"rate": chat.rate, "blacklisted": chat.blacklisted or None, "invitation": chat.invitation,
             "agents": [a.name for a in event.agents if a.name] if len(event.agents) > 1 else None,
             "plain_transcript": event.plain_messages if not transcript else None}
    interaction = _interaction(event, InteractionKind.CHAT, state=ConversationState.CLOSED, transcript=transcript,
                               occurred_at=transcript[0].at if transcript else None, extra=extra)
    return _record(event, visitor_person(event), interaction)


def _offline_message(event: payload.JivoEvent) -> CanonicalRecord:
    text = [Message(author="visitor", text=event.message, author_name=_visitor_name(event))] if event.message else []
    interaction = _interaction(event, InteractionKind.OFFLINE_MESSAGE, external_id=event.offline_message_id,
                               transcript=text)
    return _record(event, visitor_person(event), interaction)


def _call(event: payload.JivoEvent) -> CanonicalRecord:
    call = event.call or payload.Call()
    interaction = _interaction(event, InteractionKind.CALL, state=CALL_STATES.get(call.status or ""),
                               extra={"call": _present(call.model_dump()) or None})
    return _record(event, visitor_person(event), interaction)


def _client_updated(event: payload.JivoEvent) -> CanonicalRecord:
    interaction = _interaction(event, InteractionKind.CONTACT_UPDATE, agent=_agent(event.assigned_agent))
    return _record(event, visitor_person(event), interaction)


def _client_attribute_updated(event: payload.JivoEvent) -> CanonicalRecord:
    person = Person(identities=_client_number_identities(event.client_id),
                    attributes={**event.attributes, **_present({"user_token": event.user_token})})
    if not person.identities:
        raise IgnoreEvent("client_attribute_updated names no client_id (a user_token is what the site passed, not a "
                          "client Jivo knows): nobody to update")
    return _record(event, person, _interaction(event, InteractionKind.CONTACT_UPDATE))


def _crm_client_record(event: payload.JivoEvent, client: payload.CrmClient) -> CanonicalRecord:
    person = _crm_person(client)
    if person.is_empty:
        raise ParseError(f"{event.event_name} carries no client (no client_id, name or contacts): nobody to update")
    interaction = Interaction(
        kind=InteractionKind.CONTACT_UPDATE, provider=PROVIDER, agent=_agent(client.assigned_agent),
        tags=_tag_titles(client.tags), extra=_present({"blacklist": client.blacklist or None}),
    )
    return _record(event, person, interaction)


def _crm_other_records(event: payload.JivoEvent) -> list[CanonicalRecord]:
    """Set-up, deal and task events are about the CRM, not a person, unless they bring a whole client card."""
    client = event.client
    if client is not None and client.describes_a_person:
        return [_crm_client_record(event, client)]
    about = crm_category(event.event_name)
    raise IgnoreEvent(f"{event.event_name} is a Jivo CRM {about} event without a client card: "
                      "nothing to record about a person")


_HANDLERS: dict[str, Callable[[payload.JivoEvent], CanonicalRecord]] = {
    **{name: _chat for name in CHAT_EVENTS},
    "chat_finished": _chat_finished,
    "offline_message": _offline_message,
    "call_event": _call,
    "client_updated": _client_updated,
    "client_attribute_updated": _client_attribute_updated,
}


def _record(event: payload.JivoEvent, person: Person, interaction: Interaction) -> CanonicalRecord:
    return CanonicalRecord(event_type=event.event_name, person=person, interaction=interaction)


def _interaction(event: payload.JivoEvent, kind: InteractionKind, *, extra: dict[str, Any] | None = None,
                 **fields: Any) -> Interaction:
    session = event.session or payload.Session()
    fields.setdefault("agent", _agent(event.agent) or next(filter(None, map(_agent, event.agents)), None))
    assigned_agent = _agent(event.assigned_agent)
    context = {
        "department": event.department.name if event.department else None,
        # The agent responsible for the client, when that is not the one handling this interaction.
        "assigned_agent": _dump(assigned_agent) if assigned_agent != fields["agent"] else None,
        "user_agent": session.user_agent,
        **(extra or {}),
    }
    return Interaction(
        kind=kind, provider=PROVIDER, conversation_id=conversation_id(event),
        subject=event.topic.title if event.topic else None,
        page=Page(url=event.page.url, title=event.page.title) if event.page and event.page.url else None,
        utm=utm_of(session), geo=_geo(session), tags=_tag_titles(event.tags), extra=_present(context), **fields,
    )


def conversation_id(event: payload.JivoEvent) -> str | None:
    """Jivo numbers chats per channel: the channel (widget) id keeps two channels' chat 7636 apart."""
    return f"{PROVIDER}:{event.widget_id or ''}:{event.chat_id}" if event.chat_id else None


def _transcript(event: payload.JivoEvent) -> list[Message]:
    messages = event.chat.messages if event.chat else []
    agent_names = {agent.id: agent.name for agent in event.agents if agent.id}
    out = []
    for message in messages:
        if not message.message:
            continue
        author = MESSAGE_AUTHORS.get((message.type or "").lower(), "system")
        name = agent_names.get(message.agent_id) if author == "agent" else None
        out.append(Message(author=author, text=message.message, at=_utc(message.timestamp),
                           author_name=_visitor_name(event) if author == "visitor" else name))
    return out


def utm_of(session: payload.Session) -> dict[str, str]:
    """`utm_json` first; the pipe string (`source=google|medium=cpc`) fills whatever the object lacks.

    The pipe string carries the landing page's query values, so they are decoded as a query string is (`+`, `%xx`).
    """
    out: dict[str, str] = {}
    for key, value in session.utm_json.items():
        text = payload.plain_text(value)
        if text and _utm_key(key):
            out[_utm_key(key)] = text
    for part in (session.utm or "").split("|"):
        key, sep, value = part.partition("=")
        value = unquote_plus(value.strip())
        if sep and _utm_key(key) and value:
            out.setdefault(_utm_key(key), value)
    return out


def _utm_key(key: str) -> str:
    return key.strip().lower().removeprefix("utm_")


def _geo(session: payload.Session) -> dict[str, Any]:
    geoip = session.geoip.model_dump() if session.geoip else {}
    return _present({**geoip, "ip": session.ip_addr})


def _agent(agent: payload.Agent | None) -> Agent | None:
    if agent is None or not (agent.id or agent.name or agent.email):
        return None
    return Agent(id=agent.id, name=agent.name, email=agent.email)


def _tag_titles(tags: list[payload.Tag]) -> list[str]:
    return list(dict.fromkeys(tag.title for tag in tags if tag.title))


def _title(status: payload.ClientStatus | None) -> str | None:
    return status.title if status else None


def _visitor_name(event: payload.JivoEvent) -> str | None:
    return event.visitor.name if event.visitor else None


def _utc(timestamp: int | None) -> datetime | None:
    if timestamp is None or timestamp <= 0:
        return None
    try:
        seconds = timestamp / 1000 if timestamp > MILLISECONDS_THRESHOLD else timestamp
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _dump(agent: Agent | None) -> dict[str, Any] | None:
    return agent.model_dump(exclude_none=True) if agent else None


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", [], {})}
