"""What one canonical record says about a person, in the contact store's terms: claims and observed values.

A *claim* is an identity key (kind, value, scope) that names exactly one person: a verified email or phone, a
provider's visitor id, and also the id of the conversation or lead the record reports (whoever a conversation is with
is one person, so its events can never end up on two contacts). Ids a provider account hands out are scoped by the
source that reported them; emails and phones are global. An *observed value* is anything sent about the person,
verified or not, kept with where and when it was seen.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from crm_sync.model import CanonicalRecord, Interaction, Person
from crm_sync.normalise import (
    EMAIL, MAX_IDENTITY_LENGTH, PHONE, MatchingRules, normalise_email, normalise_identity_value, normalise_phone,
)
from crm_sync.schema import IdentityRole

MAX_NATURAL_KEY_LENGTH = 255
MAX_FIELD_LENGTH = 200
EVENT_ANCHOR_KIND = "event"


GLOBAL = ""  # the scope of emails, phones and CRM ids
Key = tuple[str, str, str | None]  # (kind, value, scope)


@dataclass(frozen=True, order=True)
class Claim:
    kind: str
    value: str
    role: str = IdentityRole.PERSON
    scope: str | None = GLOBAL  # None only in look-ups: any source

    @property
    def key(self) -> Key:
        return self.kind, self.value, self.scope


@dataclass(frozen=True)
class Observed:
    field: str
    value: str
    normalised: str | None = None


@dataclass(frozen=True)
class RecordFacts:
    claims: tuple[Claim, ...]
    observed: tuple[Observed, ...]
    natural_key: str | None  # the interaction's key within its source and provider, None without an interaction


def facts_of(record: CanonicalRecord, index: int, event_id: int, source: str, rules: MatchingRules) -> RecordFacts:
    person_claims, observed = person_facts(record.person, rules, source)
    claims = list(person_claims)
    interaction = record.interaction
    natural_key = interaction_key(interaction, event_id, index) if interaction else None
    anchor = _interaction_anchor(interaction, source) if interaction else None
    if anchor:
        claims.append(anchor)
    if not claims and (observed or interaction):
        claims.append(Claim(EVENT_ANCHOR_KIND, f"{event_id}:{index}", IdentityRole.EVENT))
    return RecordFacts(tuple(dict.fromkeys(claims)), tuple(dict.fromkeys(observed)), natural_key)


def interaction_key(interaction: Interaction, event_id: int, index: int) -> str:
    """One conversation is one interaction whatever its events' kinds; otherwise the provider's id, or the event."""
    if interaction.conversation_id:
        key = f"conversation:{interaction.conversation_id}"
    elif interaction.external_id:
        key = f"{interaction.kind.value}:{interaction.external_id}"
    else:
        key = f"event:{event_id}:{index}"
    return key if len(key) <= MAX_NATURAL_KEY_LENGTH else f"sha256:{_digest(key)}"


def _interaction_anchor(interaction: Interaction, source: str) -> Claim | None:
    if interaction.conversation_id:
        kind, value = f"{interaction.provider}:conversation", interaction.conversation_id
    elif interaction.external_id:
        kind, value = f"{interaction.provider}:{interaction.kind.value}", interaction.external_id
    else:
        return None
    return Claim(kind, anchor_value(value), IdentityRole.INTERACTION, source)


def anchor_value(value: str) -> str:
    """A conversation's or lead's id as its anchor identity stores it (a search asks for it the same way)."""
    return value if len(value) <= MAX_IDENTITY_LENGTH else f"sha256:{_digest(value)}"


def person_facts(person: Person, rules: MatchingRules, source: str | None) -> tuple[list[Claim], list[Observed]]:
    """The person's verified identity keys, and everything sent about them (verified or not).

    `source` scopes the provider's own ids; None (look-ups only) matches them in any source.
    """
    claims: list[Claim] = []
    observed: list[Observed] = []
    display_name = person.name or " ".join(p for p in (person.first_name, person.last_name) if p) or None
    for field, text in (("name", display_name), ("first_name", person.first_name), ("last_name", person.last_name),
                        ("company", person.company), ("description", person.description)):
        if text and text.strip():
            observed.append(Observed(field, text.strip()))
    emails = [normalise_email(text, rules) for text in person.emails]
    phones = [normalise_phone(text, rules.default_region) for text in person.phones]
    for identity in person.identities:
        kind = identity.kind.strip().lower()
        if kind == EMAIL:
            emails.append(normalise_email(identity.value, rules))
        elif kind == PHONE:
            phones.append(normalise_phone(identity.value, rules.default_region))
        elif kind and (value := normalise_identity_value(identity.value)) and len(kind) <= 100:
            claims.append(Claim(kind, value, IdentityRole.PERSON, source))
        elif identity.value.strip():
            observed.append(Observed(_field_name(f"identity.{kind}"), identity.value.strip()))
    for item in emails + phones:
        if item.original:
            observed.append(Observed(item.kind, item.original, item.value))
        if item.verified:
            claims.append(Claim(item.kind, item.value))
    for key, value in person.attributes.items():
        text = _as_text(value)
        if text:
            observed.append(Observed(_field_name(f"attribute.{key}"), text))
    return claims, observed


def _as_text(value: Any) -> str | None:
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, str):
        return value.strip() or None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _field_name(name: str) -> str:
    return name if len(name) <= MAX_FIELD_LENGTH else f"{name[:100]}~{_digest(name)[:16]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
