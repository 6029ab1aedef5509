"""JivoChat (Jivo, JivoSite): channel webhooks and CRM webhooks, one JSON POST per event, routed by `event_name`.

Jivo signs nothing, so the source's secret URL is the only credential and a source without one is refused at
start-up. Every event is answered `{"result": "ok"}`; `chat_accepted` and `chat_updated` also get the known
contact's card from our own store, which Jivo shows to the agent while the chat is open.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from crm_sync.contacts import lookup_card
from crm_sync.model import CanonicalRecord
from crm_sync.normalise import rules_from_settings
from ingest.providers.base import AuthenticationFailed, ParseError, Provider, RawRequest, Reply, stable_hash
from ingest.providers.jivo.card import OK, card_reply
from ingest.providers.jivo.events import CARD_EVENTS, CHAT_EVENTS
from ingest.providers.jivo.payload import JivoEvent, read_event
from ingest.providers.jivo.records import conversation_id, records_of, visitor_person
from ingest.settings import SourceSettings

if TYPE_CHECKING:
    from ingest.replies import ReplyContext

__all__ = ["JivoProvider", "JivoSettings"]

log = logging.getLogger(__name__)

# Events about one chat: a redelivery repeats the chat id and the data; a genuinely new one changes the data.
CHAT_SCOPED_EVENTS = CHAT_EVENTS | {"chat_finished", "offline_message", "call_event"}
# What changes while the visitor browses during one chat; not new data about the chat or the person.
VISIT_NOISE = frozenset({"session", "page", "analytics"})


class JivoSettings(SourceSettings):
    @model_validator(mode="after")
    def _requires_url_secret(self) -> "JivoSettings":
        if self.url_secret is None:
            raise ValueError("a jivo source needs url_secret: Jivo signs nothing, so the secret URL is the only "
                             "thing that keeps strangers out")
        return self


class JivoProvider(Provider):
    name = "jivo"
    settings_model = JivoSettings

    def authenticate(self, request: RawRequest, source: SourceSettings) -> None:
        # The route has already matched the URL secret; refuse anyway if there was none to match (fail closed).
        if getattr(source, "url_secret", None) is None:
            raise AuthenticationFailed("jivo source has no url_secret; refusing an unauthenticated request")

    def dedup_key(self, request: RawRequest) -> str:
        try:
            event = read_event(request)
        except ParseError:
            return super().dedup_key(request)
        return _dedup_key(event, request.json_object())

    def reply(self, context: "ReplyContext") -> Reply:
        """The contact card for chat_accepted/chat_updated, else (and on any failure) `{"result": "ok"}`."""
        try:
            return Reply(200, _card_or_ok(context))
        except Exception:
            log.exception("jivo: no contact card for event %s; answering the plain acknowledgement",
                          context.event.id)
            return Reply(200, dict(OK))

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        return records_of(read_event(request))

    @classmethod
    def setup_instructions(cls, url: str, source: SourceSettings) -> str:
        return (f"in Jivo open Manage > Channels > (channel) > Settings > Integration settings for developers, "
                f"enable Webhooks and paste {url} as the Webhooks endpoint URL; for CRM events also paste it in "
                f"CRM settings > CRM Webhooks")


def _dedup_key(event: JivoEvent, body: dict[str, Any]) -> str:
    name = event.event_name
    if name == "offline_message" and event.offline_message_id:
        return f"jivo:offline_message:{event.widget_id or ''}:{event.offline_message_id}"
    if name in CHAT_SCOPED_EVENTS and event.chat_id:
        reported = {key: value for key, value in body.items() if key not in VISIT_NOISE}
        return f"jivo:{name}:{event.widget_id or ''}:{event.chat_id}:{stable_hash(reported)}"
    # Client and CRM events carry no id or time: the same content is the same event.
    return f"jivo:{name}:{stable_hash(body)}"


def _card_or_ok(context: "ReplyContext") -> dict[str, Any]:
    try:
        event = read_event(context.request)
    except ParseError:
        return dict(OK)
    if event.event_name not in CARD_EVENTS:
        return dict(OK)
    person = visitor_person(event)
    if not (person.emails or person.phones or person.identities):
        return dict(OK)
    settings = context.settings
    with context.sessions() as session:
        card = lookup_card(session, person, settings.default_phone_region, rules_from_settings(settings),
                           source=context.source.name)
    primary = next((name for name, destination in settings.destinations.items() if destination.primary), None)
    return dict(OK) if card is None else card_reply(card, conversation_id(event), primary)
