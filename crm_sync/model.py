"""The canonical model: what every provider's payload is turned into, whatever its shape.

Values are kept as the provider wrote them (a phone stays `8 (916) 123-45-67`); normalisation to E.164 and case-folded
emails happens in the contact store, which keeps the original text beside the normal form.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """Text a database can hold and a person can read: PostgreSQL text refuses NUL, and a lone surrogate (JSON's
        "\\ud800") is no UTF-8 at all; either one in a visitor's name would send the whole event dead. Other control
        characters (all but tab and line breaks) carry nothing a person wrote, and a CRM would keep them in the name
        for every export and screen to trip over. They are dropped; a lone surrogate becomes U+FFFD, as any other
        undecodable text does."""
        return _storable_text(value)

    @field_validator("*", mode="after")
    @classmethod
    def _in_utc(cls, value: Any) -> Any:
        """Every time in UTC, as it is stored. A time that has none (year 1 east of Greenwich, 9999 west of it: a
        sender's placeholder, or garbage) is unknown, as an unreadable one is, rather than an error further on."""
        if not isinstance(value, datetime) or value.tzinfo is timezone.utc:
            return value
        try:
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        except OverflowError:
            return None


# Free-form values (a lead's data, a contact's attributes, a provider's extras) deeper than this are cut there: no
# provider nests its own fields a tenth as deep, and a sender who does would otherwise overflow the stack or
# pydantic's serialiser further on.
MAX_FREE_FORM_DEPTH = 32
TOO_DEEP = "<nested too deep>"

# C0 controls but tab, LF and CR; and DEL. C1 (U+0080-U+009F) stays: mis-decoded Windows-1252 text lands there, and
# which character was meant is a guess.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _storable_text(value: Any, depth: int = 0) -> Any:
    """Also: NaN and infinities, which Python's JSON reader accepts and PostgreSQL's json refuses, become null."""
    if isinstance(value, str):
        value = _CONTROL_CHARACTERS.sub("", value)
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, (dict, list)) and depth >= MAX_FREE_FORM_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        return {_storable_text(key, depth + 1): _storable_text(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable_text(item, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class InteractionKind(StrEnum):
    CHAT = "chat"                      # a conversation (chat, livechat room) as a whole
    MESSAGE = "message"                # one or more new messages of a conversation
    OFFLINE_MESSAGE = "offline_message"
    LEAD = "lead"                      # a lead or deal request (Roistat, lead capture)
    CALL = "call"
    TICKET = "ticket"
    CONTACT_UPDATE = "contact_update"  # the provider changed what it knows about the person
    NOTE = "note"                      # free text about an existing lead or conversation


class ConversationState(StrEnum):
    """Ordered: a conversation's state only moves forward, whatever order the events arrive in."""

    OPEN = "open"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    CLOSED = "closed"

    @property
    def rank(self) -> int:
        return list(ConversationState).index(self)


class ProviderIdentity(_Model):
    """An id a provider gives the person, e.g. kind="jivo.client_id", value="1217"."""

    kind: str
    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str:
        return str(value)


class Person(_Model):
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    identities: list[ProviderIdentity] = Field(default_factory=list)
    company: str | None = None
    description: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("emails", "phones", mode="before")
    @classmethod
    def _drop_blank(cls, values: Any) -> list[str]:
        """Providers send "" or None for "not given": that is absence, not a value."""
        if values is None:
            return []
        if not isinstance(values, (list, tuple)):
            values = [values]
        out: list[str] = []
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
                raise ValueError(f"expected text or a list of texts, not {type(value).__name__}")
            text = str(value).strip() if value is not None else ""
            if text and text not in out:
                out.append(text)
        return out

    @property
    def is_empty(self) -> bool:
        return not (self.name or self.first_name or self.last_name or self.emails or self.phones or self.identities)


class Agent(_Model):
    id: str | None = None
    name: str | None = None
    email: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> str | None:
        return None if value is None or value == "" else str(value)


class Message(_Model):
    author: str                        # "visitor", "agent", "system", "bot"
    text: str
    at: datetime | None = None
    external_id: str | None = None
    author_name: str | None = None


class Page(_Model):
    url: str
    title: str | None = None


class Lead(_Model):
    """Lead-tracking data (Roistat and similar)."""

    external_id: str | None = None     # the provider's lead id (Roistat `id`)
    visit: str | None = None           # attribution visit (Roistat `visit`)
    title: str | None = None
    text: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Interaction(_Model):
    kind: InteractionKind
    provider: str
    # The same conversation reported by several events carries the same conversation_id.
    conversation_id: str | None = None
    # What makes this interaction unique within the provider (message id, lead id, offline message id...).
    external_id: str | None = None
    occurred_at: datetime | None = None
    state: ConversationState | None = None
    subject: str | None = None
    transcript: list[Message] = Field(default_factory=list)
    agent: Agent | None = None
    page: Page | None = None
    utm: dict[str, str] = Field(default_factory=dict)
    geo: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    lead: Lead | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class CanonicalRecord(_Model):
    """One thing that happened, about one person. A payload may yield several."""

    event_type: str                    # the provider's own name for the event, e.g. "chat_accepted"
    person: Person = Field(default_factory=Person)
    interaction: Interaction | None = None
