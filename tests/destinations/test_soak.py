"""Soak: hundreds of deliveries for dozens of people through random faults, retried until they succeed.

Whatever fails, and wherever (before the write, after it landed, with search lagging behind), each CRM must end
with exactly one record per person and one interaction record per delivery key. Faults are random but seeded, so a
failure is reproducible from the seed in the test id.
"""
from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import replace
from typing import Any, Callable

import pytest

from crm_sync.destinations.base import DeliveryRequest, DeliveryResult, Destination, PermanentError, TransientError
from crm_sync.destinations.content import has_marker
from tests.destinations.builders import chat, contact, lead
from tests.destinations.conftest import WEBHOOK_SECRET
from tests.destinations.standard_webhooks import expected_signature

PEOPLE, DELIVERIES, MAX_ATTEMPTS = 30, 240, 40


def people() -> list:
    """Some people have only a phone, some only an email, most both."""
    return [contact(n, name=f"Person {n}", email=None if n % 5 == 0 else f"p{n}@soak.example",
                    phone=None if n % 7 == 0 else f"+7916000{n:04d}") for n in range(1, PEOPLE + 1)]


def deliveries(rng: random.Random) -> list[DeliveryRequest]:
    everyone = people()
    out = []
    for n in range(1, DELIVERIES + 1):
        person = rng.choice(everyone)
        interaction = lead(interaction_id=n) if n % 6 == 0 else chat(interaction_id=n)
        out.append(DeliveryRequest(idempotency_key=f"soak:{n}", attempt=1, contact=person, interaction=interaction))
    return out


def run(destination: Destination, planned: list[DeliveryRequest], rng: random.Random, batched: bool
        ) -> dict[str, DeliveryResult]:
    """The engine in miniature: retry transient failures, and link the person's record after a success."""
    links: dict[int, str] = {}
    done: dict[str, DeliveryResult] = {}
    queue = deque(planned)
    while queue:
        chunk = [queue.popleft() for _ in range(min(rng.randint(1, 8) if batched else 1, len(queue)))]
        # Half the time the engine already stored the person's link; the other half it has not (yet).
        chunk = [replace(r, contact=replace(r.contact, record_id=links.get(r.contact.contact_id)))
                 if rng.random() < 0.5 else r for r in chunk]
        for request, outcome in zip(chunk, destination.deliver_batch(chunk)):
            if isinstance(outcome, PermanentError):
                raise AssertionError(f"{request.idempotency_key}: {outcome.reason}: {outcome.message}")
            if isinstance(outcome, TransientError):
                assert request.attempt < MAX_ATTEMPTS, f"{request.idempotency_key} never succeeded: {outcome}"
                queue.append(replace(request, attempt=request.attempt + 1))
                continue
            links[request.contact.contact_id] = outcome.contact_record_id
            done.setdefault(request.idempotency_key, outcome)
    return done


def set_random_faults(fake: Any, seed: int) -> None:
    faults = fake.faults
    faults.reseed(seed)
    faults.server_error_rate, faults.rate_limit_rate, faults.after_write_rate = 0.04, 0.03, 0.12
    faults.timeout_rate, faults.retry_after = 0.001, 0
    faults.search_lag_ms = 1500


def hubspot_census(fake: Any, keys: list[str]) -> tuple[Counter, Counter]:
    persons = Counter(int(c["properties"]["crm_ingest_contact_id"]) for c in fake.contacts.values())
    notes = Counter(k for n in fake.notes.values() for k in keys if has_marker(n["properties"]["hs_note_body"], k))
    return persons, notes


def bitrix_census(fake: Any, keys: list[str]) -> tuple[Counter, Counter]:
    return Counter(c["ORIGIN_ID"] for c in fake.contacts.values()), Counter(l["ORIGIN_ID"] for l in fake.leads.values())


def pipedrive_census(fake: Any, keys: list[str]) -> tuple[Counter, Counter]:
    notes = Counter(k for n in fake.notes.values() for k in keys if has_marker(n["content"], k))
    leads = Counter(lead["origin_id"] for lead in fake.leads.values())
    assert max(leads.values()) == 1, "a Pipedrive lead was written twice"
    return Counter(p["name"] for p in fake.persons.values()), notes


def kommo_census(fake: Any, keys: list[str]) -> tuple[Counter, Counter]:
    leads = Counter(lead["custom_fields_values"][0]["values"][0]["value"] for lead in fake.leads.values())
    notes = Counter(k for n in fake.notes.values() for k in keys if has_marker(n["params"]["text"], k))
    assert notes == leads, "every lead has exactly its own note"
    return Counter(c["name"] for c in fake.contacts.values()), leads


def webhook_census(fake: Any, keys: list[str]) -> tuple[Counter, Counter]:
    for request in fake.received:
        expected = expected_signature(WEBHOOK_SECRET, request.header("webhook-id"),
                                      request.header("webhook-timestamp"), request.body)
        assert request.header("webhook-signature") == expected
    people_seen = Counter(body["data"]["contact"]["id"] for body in fake.deliveries.values())
    return Counter({person: 1 for person in people_seen}), Counter({k: 1 for k in fake.deliveries})


CENSUS: dict[str, tuple[str, str, Callable[[Any, list[str]], tuple[Counter, Counter]], bool]] = {
    "hubspot": ("hubspot", "hubspot_fake", hubspot_census, True),
    "bitrix24": ("bitrix", "bitrix_fake", bitrix_census, False),
    "pipedrive": ("pipedrive", "pipedrive_fake", pipedrive_census, False),
    "kommo": ("kommo", "kommo_fake", kommo_census, True),
    "webhook": ("webhook", "receiver", webhook_census, False),
}


@pytest.mark.parametrize("vendor", list(CENSUS))
def test_random_faults_and_retries_leave_one_record_per_person_and_per_delivery(request, vendor):
    destination_name, fake_name, census, batched = CENSUS[vendor]
    seed = sum(map(ord, vendor))
    fake, destination = request.getfixturevalue(fake_name), request.getfixturevalue(destination_name)
    set_random_faults(fake, seed)
    rng = random.Random(seed)
    planned = deliveries(rng)

    done = run(destination, planned, rng, batched)

    keys = [r.idempotency_key for r in planned]
    persons, interactions = census(fake, keys)
    assert sorted(done) == sorted(keys)
    assert set(persons.values()) == {1}, f"people with several records: {[p for p, n in persons.items() if n > 1]}"
    assert len(persons) == len({r.contact.contact_id for r in planned})
    assert interactions == Counter({key: 1 for key in keys})
    faults = Counter(call.fault for call in fake.calls)
    assert faults["after_write"] and faults["server_error"] and faults["rate_limit"], faults


@pytest.mark.parametrize("vendor", [v for v in CENSUS if v != "webhook"])
def test_replaying_finished_deliveries_writes_nothing_new(request, vendor):
    destination_name, fake_name, census, batched = CENSUS[vendor]
    fake, destination = request.getfixturevalue(fake_name), request.getfixturevalue(destination_name)
    originals = deliveries(random.Random(7))[:40]
    for outcome in destination.deliver_batch(originals):
        assert isinstance(outcome, DeliveryResult)
    fake.faults.search_lag_ms = 60_000   # a replay right after the original: search has not caught up
    before = census(fake, [r.idempotency_key for r in originals])

    replayed = destination.deliver_batch([replace(r, attempt=2) for r in originals])

    assert all(isinstance(outcome, DeliveryResult) for outcome in replayed)
    assert census(fake, [r.idempotency_key for r in originals]) == before
