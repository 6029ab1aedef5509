"""The delivery engine against the fake CRMs: a runtime with provider sources and destinations, virtual time.

`Harness` receives provider requests through /hooks, processes them as the worker does (planning included), and
drives the drain functions directly on a virtual clock: waiting for a backoff, a Retry-After or a cool-down is a jump
of the clock, not a sleep.
"""
from __future__ import annotations

import json
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import select

from crm_sync.delivery.claims import next_due_at
from crm_sync.delivery.clock import Clock
from crm_sync.delivery.drain import DrainReport
from crm_sync.delivery.engine import DeliveryEngine
from crm_sync.pipeline import process_events
from crm_sync.schema import Delivery, DestinationState
from crm_sync.store import StoreOptions
from ingest.runtime import Runtime
from ingest.schema import Event
from ingest.settings import Settings
from tests.conftest import make_client
from tests.contacts.provider_requests import PROVIDER_SOURCES, Delivery as ProviderRequest
from tests.fakes import hubspot as fake_hubspot
from tests.fakes import kommo as fake_kommo
from tests.fakes import pipedrive as fake_pipedrive
from tests.fakes.base import FakeCRM

# Generous, so that a loaded test machine never turns a slow fake into a timeout; the soaks set short ones on purpose.
CLIENT_TIMEOUT = 5.0


class VirtualClock(Clock):
    """Real time plus an offset that `sleep` and `advance` grow: time still flows, waiting costs nothing.

    Time skipped by `sleep` and `advance` passes for the database too (a lease runs out); setting `offset` directly
    instead stands for a machine whose clock is wrong."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.skipped = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.offset)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.offset += max(0.0, seconds)
            self.skipped += max(0.0, seconds)

    def skipped_seconds(self) -> float:
        return self.skipped

    def advance_to(self, moment: datetime) -> None:
        self.advance((moment - self.now()).total_seconds() + 0.001)


def hubspot_settings(fake: FakeCRM, **overrides: Any) -> dict[str, Any]:
    return {"kind": "hubspot", "base_url": fake.url, "token": fake_hubspot.TOKEN, "portal_id": 4242,
            "timeout_seconds": CLIENT_TIMEOUT, **overrides}


def pipedrive_settings(fake: FakeCRM, **overrides: Any) -> dict[str, Any]:
    return {"kind": "pipedrive", "base_url": fake.url, "api_token": fake_pipedrive.TOKEN,
            "timeout_seconds": CLIENT_TIMEOUT, **overrides}


def kommo_settings(fake: FakeCRM, **overrides: Any) -> dict[str, Any]:
    return {"kind": "kommo", "base_url": fake.url, "token": fake_kommo.TOKEN, "key_field_id": fake_kommo.KEY_FIELD_ID,
            "timeout_seconds": CLIENT_TIMEOUT, **overrides}


@dataclass
class Harness:
    runtime: Runtime
    clock: VirtualClock = field(default_factory=VirtualClock)

    def __post_init__(self) -> None:
        self.client = make_client(self.runtime)
        self.options = StoreOptions.from_settings(self.runtime.settings)
        self.engine = DeliveryEngine(self.runtime.settings, self.runtime.sessions, clock=self.clock)

    # --- events in ----------------------------------------------------------------------------------------------

    def send(self, *requests: ProviderRequest):
        return [request.send(self.client) for request in requests]

    def process_waiting(self) -> set[str]:
        """Process every event still waiting, in arrival order, as the worker does a task message carrying them;
        the destinations woken."""
        with self.runtime.sessions() as session:
            waiting = list(session.scalars(select(Event.id).where(Event.status == "received").order_by(Event.id)))
        planned: set[str] = set()
        outcomes = process_events(self.runtime.sessions, waiting, options=self.options, planned_for=planned)
        for event_id, outcome in zip(waiting, outcomes):
            assert outcome == "processed", f"event {event_id}: {outcome}"
        return planned

    def receive(self, *requests: ProviderRequest) -> set[str]:
        self.send(*requests)
        return self.process_waiting()

    # --- deliveries out -----------------------------------------------------------------------------------------

    def drain(self, name: str) -> DrainReport:
        return self.engine.drain(name)

    def drain_until_settled(self, names: list[str] | None = None, max_rounds: int = 2000, step: float = 0.0) -> int:
        """Drain every destination, jumping the clock to the next due time (at least `step` seconds ahead, so that
        retries spread by jitter fall due together), until nothing waits; the rounds it took."""
        names = names or self.engine.names
        for rounds in range(1, max_rounds + 1):
            for name in names:
                self.drain(name)
            wake_at = self.next_wake(names)
            if wake_at is None:
                return rounds
            if wake_at > self.clock.now():
                self.clock.advance_to(max(wake_at, self.clock.now() + timedelta(seconds=step)))
        raise AssertionError(f"deliveries still waiting after {max_rounds} rounds: {self.statuses()}")

    def next_wake(self, names: list[str]) -> datetime | None:
        """When the earliest waiting delivery may be attempted (its due time, or its destination's pause end)."""
        moments = []
        with self.runtime.sessions() as session:
            for name in names:
                due = next_due_at(session, name)
                if due is None:
                    continue
                state = session.get(DestinationState, name)
                pauses = [m for m in (state.circuit_open_until, state.throttled_until) if m] if state else []
                moments.append(max([due, *pauses]))
        return min(moments) if moments else None

    def deliveries(self, destination: str | None = None) -> list[Delivery]:
        with self.runtime.sessions() as session:
            query = select(Delivery).order_by(Delivery.id)
            if destination:
                query = query.where(Delivery.destination == destination)
            return list(session.scalars(query))

    def delivery(self, delivery_id: int) -> Delivery:
        with self.runtime.sessions() as session:
            return session.get(Delivery, delivery_id)

    def state(self, name: str) -> DestinationState | None:
        with self.runtime.sessions() as session:
            return session.get(DestinationState, name)

    def statuses(self, destination: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.deliveries(destination):
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts


def write_config(path: Path, settings: Settings) -> Path:
    """The settings as a crm-ingest.toml (sources and destinations included), for CLI and worker processes."""
    top = {"database_url": settings.database_url, "broker_url": settings.broker_url,
           "broker_key_prefix": settings.broker_key_prefix, "data_dir": str(settings.data_dir),
           "admin_token": settings.admin_token.get_secret_value() if settings.admin_token else None}
    lines = [f"{key} = {json.dumps(value)}" for key, value in top.items() if value is not None]
    for section, entries in (("sources", settings.sources), ("destinations", settings.destinations)):
        for name, entry in entries.items():
            lines.append(f"[{section}.{json.dumps(name)}]")
            for key, value in entry.model_dump(exclude={"name"}, exclude_defaults=True).items():
                secret = getattr(value, "get_secret_value", None)
                lines.append(f"{key} = {json.dumps(secret() if secret else value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fakes() -> Iterator[Callable[[type[FakeCRM]], FakeCRM]]:
    """`fakes(HubSpotFake)`: a started fake, stopped after the test."""
    with ExitStack() as stack:
        yield lambda cls: stack.enter_context(cls().running())


@pytest.fixture
def hubspot_fake(fakes) -> fake_hubspot.HubSpotFake:
    return fakes(fake_hubspot.HubSpotFake)


@pytest.fixture
def pipedrive_fake(fakes) -> fake_pipedrive.PipedriveFake:
    return fakes(fake_pipedrive.PipedriveFake)


@pytest.fixture
def kommo_fake(fakes) -> fake_kommo.KommoFake:
    return fakes(fake_kommo.KommoFake)


@pytest.fixture
def make_harness_on(make_settings) -> Iterator[Callable[..., Harness]]:
    """`make_harness_on(database_url, destinations={...}, **settings)`: provider sources and these destinations."""
    made: list[Runtime] = []

    def build(database: str, destinations: dict[str, dict[str, Any]], **settings: Any) -> Harness:
        runtime = Runtime(make_settings(database, sources=PROVIDER_SOURCES, destinations=destinations, **settings))
        made.append(runtime)
        return Harness(runtime)

    yield build
    for runtime in made:
        runtime.close()


@pytest.fixture
def make_harness(database_url, make_harness_on) -> Callable[..., Harness]:
    """`make_harness(destinations={...}, **settings)` on the parametrised database (SQLite and PostgreSQL)."""
    return lambda destinations, **settings: make_harness_on(database_url, destinations, **settings)
