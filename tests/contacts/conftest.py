"""Fixtures for the contact store: events stored the way /hooks stores them, processed the way the worker does."""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_sync.contacts import ContactCard, lookup_card
from crm_sync.model import (
    CanonicalRecord, ConversationState, Interaction, InteractionKind, Message, Person, ProviderIdentity,
)
from crm_sync.pipeline import process_events
from crm_sync.schema import Contact, ContactIdentity, ContactValue, StoredInteraction
from crm_sync.store import StoreOptions
from ingest.db import transaction
from ingest.events import reset_for_replay, store_event
from ingest.providers.base import RawRequest
from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import truncate_postgres
from tests.contacts.provider_requests import PROVIDER_SOURCES
from tests.contacts.scripted import SCRIPTED

SCRIPTED_SOURCES = {"scripted": {"provider": SCRIPTED}, "scripted-other": {"provider": SCRIPTED}}


@dataclass(frozen=True)
class ContactView:
    id: int
    name: str | None
    primary_email: str | None
    primary_phone: str | None
    identities: frozenset[tuple[str, str]]
    interactions: tuple[StoredInteraction, ...]

    @property
    def person_identities(self) -> frozenset[tuple[str, str]]:
        """Emails, phones and provider ids, without the conversation and event anchors."""
        return frozenset((kind, value) for kind, value in self.identities if ":" not in kind and kind != "event")


@dataclass
class StoreHarness:
    runtime: Runtime
    options: StoreOptions = field(default_factory=StoreOptions)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.runtime.sessions() as session:
            yield session

    def deliver(self, *records: CanonicalRecord, source: str = "scripted", provider: str = SCRIPTED) -> int:
        """Store one event carrying `records`, as /hooks would; returns its id."""
        body = json.dumps([r.model_dump(mode="json", exclude_defaults=True) for r in records]).encode()
        request = RawRequest("POST", f"/hooks/{source}", "", {"Content-Type": "application/json"}, body,
                             "application/json")
        return store_event(self.runtime.engine, source=source, provider=provider, dedup_key=f"t:{uuid.uuid4().hex}",
                           request=request).id

    def process(self, *event_ids: int) -> None:
        """Process the events as the worker processes one task message carrying them."""
        outcomes = process_events(self.runtime.sessions, list(event_ids), options=self.options)
        for event_id, outcome in zip(event_ids, outcomes):
            assert outcome == "processed", f"event {event_id}: {outcome} ({self.event(event_id).error_message})"

    def receive(self, *records: CanonicalRecord, source: str = "scripted") -> int:
        event_id = self.deliver(*records, source=source)
        self.process(event_id)
        return event_id

    def process_waiting(self) -> list[int]:
        """Process every event still waiting (received over HTTP, say), in arrival order; returns their ids."""
        with self.session() as session:
            waiting = list(session.scalars(select(Event.id).where(Event.status == "received").order_by(Event.id)))
        self.process(*waiting)
        return waiting

    def replay(self, event_id: int) -> None:
        with transaction(self.runtime.sessions) as session:
            assert [event.id for event in reset_for_replay(session, [event_id])] == [event_id]
        self.process(event_id)

    def event(self, event_id: int) -> Event:
        with self.session() as session:
            return session.get(Event, event_id)

    def contacts(self) -> list[ContactView]:
        """Every live (not merged) contact, by id."""
        with self.session() as session:
            contacts = session.scalars(select(Contact).where(Contact.merged_into.is_(None)).order_by(Contact.id))
            return [self._view(session, contact) for contact in contacts]

    def contact(self, contact_id: int) -> Contact:
        with self.session() as session:
            return session.get(Contact, contact_id)

    def only_contact(self) -> ContactView:
        contacts = self.contacts()
        assert len(contacts) == 1, f"expected one contact, found {[c.person_identities for c in contacts]}"
        return contacts[0]

    def values(self, contact_id: int) -> list[ContactValue]:
        with self.session() as session:
            return list(session.scalars(select(ContactValue).where(ContactValue.contact_id == contact_id)
                                        .order_by(ContactValue.field, ContactValue.first_event_id)))

    def interactions(self) -> list[StoredInteraction]:
        with self.session() as session:
            return list(session.scalars(select(StoredInteraction).order_by(StoredInteraction.id)))

    def card(self, person: Person) -> ContactCard | None:
        with self.session() as session:
            return lookup_card(session, person, self.runtime.settings.default_phone_region, self.options.rules)

    @staticmethod
    def _view(session: Session, contact: Contact) -> ContactView:
        identities = session.execute(select(ContactIdentity.kind, ContactIdentity.value)
                                     .where(ContactIdentity.contact_id == contact.id)).all()
        interactions = session.scalars(select(StoredInteraction).where(StoredInteraction.contact_id == contact.id)
                                       .order_by(StoredInteraction.id))
        return ContactView(contact.id, contact.name, contact.primary_email, contact.primary_phone,
                           frozenset((row.kind, row.value) for row in identities), tuple(interactions))


@pytest.fixture
def make_store(database_url, make_settings) -> Iterator[Callable[..., StoreHarness]]:
    """`make_store(primary_policy="prefer_newest", sources={...})`: a harness on the parametrised database."""
    runtimes: list[Runtime] = []

    def build(sources: dict | None = None, **settings: Any) -> StoreHarness:
        runtime = Runtime(make_settings(database_url, sources={**SCRIPTED_SOURCES, **(sources or {})}, **settings))
        runtimes.append(runtime)
        return StoreHarness(runtime, StoreOptions.from_settings(runtime.settings))

    yield build
    for runtime in runtimes:
        runtime.close()


@pytest.fixture
def store(make_store) -> StoreHarness:
    return make_store()


@pytest.fixture
def pg_store(postgres_schema_url, make_settings) -> Iterator[StoreHarness]:
    """A harness on PostgreSQL only, emptied first: for what needs two writers at once (SQLite has one)."""
    truncate_postgres(postgres_schema_url)
    runtime = Runtime(make_settings(postgres_schema_url, sources={**SCRIPTED_SOURCES, **PROVIDER_SOURCES}))
    yield StoreHarness(runtime, StoreOptions.from_settings(runtime.settings))
    runtime.close()


# --- record builders: what a provider reports, in a line --------------------------------------------------------------

def visitor(name: str | None = None, email: str | list[str] | None = None, phone: str | list[str] | None = None,
            ids: dict[str, str] | None = None, **fields: Any) -> Person:
    identities = [ProviderIdentity(kind=kind, value=value) for kind, value in (ids or {}).items()]
    return Person(name=name, emails=email, phones=phone, identities=identities, **fields)


def report(person: Person | None = None, interaction: Interaction | None = None,
           event_type: str = "test") -> CanonicalRecord:
    return CanonicalRecord(event_type=event_type, person=person or Person(), interaction=interaction)


def chat(conversation_id: str, state: ConversationState | None = None, provider: str = "jivo",
         kind: InteractionKind = InteractionKind.CHAT, messages: list[Message] | None = None,
         **fields: Any) -> Interaction:
    return Interaction(kind=kind, provider=provider, conversation_id=conversation_id, state=state,
                       transcript=messages or [], **fields)


def lead(external_id: str, provider: str = "roistat", **fields: Any) -> Interaction:
    return Interaction(kind=InteractionKind.LEAD, provider=provider, external_id=external_id, **fields)
