"""Fixtures for provider tests: a runtime with the provider's sources, its client, and synchronous processing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from crm_sync.pipeline import process_event
from crm_sync.schema import Contact
from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import make_client
from tests.providers import jivo_support, livechat_support, rocketchat_support


@dataclass
class ProviderHarness:
    runtime: Runtime
    client: FlaskClient

    def events(self) -> list[Event]:
        with self.runtime.sessions() as session:
            return list(session.scalars(select(Event).order_by(Event.id)))

    def event(self, event_id: int) -> Event:
        with self.runtime.sessions() as session:
            return session.get(Event, event_id)

    def contacts(self) -> list[Contact]:
        """The live (not merged) contacts, by id."""
        with self.runtime.sessions() as session:
            return list(session.scalars(select(Contact).where(Contact.merged_into.is_(None)).order_by(Contact.id)))

    def process_all(self) -> list[Event]:
        """Process every stored event without a broker (the worker's code path) and return them all."""
        for event in self.events():
            process_event(self.runtime.sessions, event.id)
        return self.events()


@pytest.fixture
def provider_harness(database_url, make_settings) -> Iterator[Callable[[dict], ProviderHarness]]:
    """`provider_harness({"jivo-main": {"provider": "jivo", "url_secret": "..."}})` → runtime + client."""
    runtimes: list[Runtime] = []

    def build(sources: dict) -> ProviderHarness:
        runtime = Runtime(make_settings(database_url, sources=sources))
        runtimes.append(runtime)
        return ProviderHarness(runtime, make_client(runtime))

    yield build
    for runtime in runtimes:
        runtime.close()


@pytest.fixture
def livechat(provider_harness) -> ProviderHarness:
    """The LiveChat sources of livechat_support: v3 and legacy, v3 only, legacy only."""
    return provider_harness(livechat_support.SOURCES)


@pytest.fixture
def rocket(provider_harness) -> ProviderHarness:
    """The Rocket.Chat source of rocketchat_support, with its Secret Token."""
    return provider_harness(rocketchat_support.SOURCES)


@pytest.fixture
def jivo(provider_harness) -> ProviderHarness:
    """The Jivo source of jivo_support, behind its secret URL."""
    return provider_harness(jivo_support.SOURCES)
