"""Done when: thousands of provider events through every fault of the fake CRMs end with each person exactly once in
each CRM, every delivery succeeded or dead with a reason, and every dead one succeeding on retry once the fault is off.

The drain functions run in this process on virtual time (backoff, Retry-After and cool-downs cost nothing); the
worker variant runs a smaller load through a real `crm-ingest worker` process on Redis with beat-less sweeps.
Faults are random but seeded, so a failure is reproducible.
"""
from __future__ import annotations

import random
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from crm_sync.destinations.content import has_marker, same_phone
from crm_sync.pipeline import process_event
from crm_sync.schema import DeliveryStatus
from ingest.delivery_admin import DeliveryFilter, retry_matching
from ingest.schema import Event
from tests.conftest import truncate_postgres
from tests.delivery.conftest import Harness, hubspot_settings, kommo_settings
from tests.delivery.provider_events import people, traffic
from tests.fakes.faults import Fault

SEED = 20261121
PEOPLE, REQUESTS = 200, 1000
MARKER = re.compile(r"crm-ingest:([\w.-]+:i\d+:r\d+)")
SOAK_TIMEOUT = 1.0    # seconds an HTTP call may take before it counts as a timeout (a fake holds one for 2)
SETTLE_STEP = 10.0    # virtual seconds the clock jumps at least when nothing is due


def switch_faults_on(fake, seed: int) -> None:
    faults = fake.faults
    faults.reseed(seed)
    faults.script(Fault.timeout())   # at least one, whatever the draws
    faults.server_error_rate, faults.rate_limit_rate, faults.timeout_rate = 0.03, 0.02, 0.001
    faults.after_write_rate, faults.search_lag_ms, faults.retry_after = 0.04, 1500, 1
    faults.latency_ms, faults.hold_seconds = 0.2, 2


def switch_faults_off(fake) -> None:
    faults = fake.faults
    faults.server_error_rate = faults.rate_limit_rate = faults.timeout_rate = faults.after_write_rate = 0.0
    faults.latency_ms = 0
    faults.scripted.clear()


def script_permanent_faults(fake, rng: random.Random) -> None:
    """A revoked token or a rejected field now and then: those deliveries go dead with a reason."""
    fake.faults.script(*rng.sample([Fault.respond(401, {"message": "token revoked"}),
                                    Fault.respond(400, {"message": "field rejected"}),
                                    Fault.respond(403, {"message": "forbidden"})], 2))


def records_per_person(census: dict[str, list[str]], everyone) -> dict[str, Counter]:
    """{CRM: Counter(person's phone -> number of records holding it)}."""
    return {crm: Counter(person.e164 for person in everyone for phone in phones if same_phone(phone, person.e164))
            for crm, phones in census.items()}


def census(*fakes) -> dict[str, list[str]]:
    """Every person record's phone in each fake CRM (a record without a phone counts as nobody's)."""
    return {fake.vendor: PHONES_OF[fake.vendor](fake) for fake in fakes}


PHONES_OF = {
    "hubspot": lambda fake: [c["properties"].get("phone") or f"none:{c['id']}" for c in fake.contacts.values()],
    "pipedrive": lambda fake: [(p["phones"] or [{"value": f"none:{p['id']}"}])[0]["value"]
                               for p in fake.persons.values()],
    "kommo": lambda fake: [next((v["value"] for f in (c.get("custom_fields_values") or [])
                                 if f.get("field_code") == "PHONE" for v in f["values"]), f"none:{c['id']}")
                           for c in fake.contacts.values()],
}


def assert_nobody_twice(fakes, everyone) -> None:
    records = census(*fakes)
    for crm, counts in records_per_person(records, everyone).items():
        twice = {phone: n for phone, n in counts.items() if n > 1}
        assert not twice, f"{crm}: people with several records: {twice}"
        assert len(records[crm]) == sum(counts.values()), f"{crm}: records that belong to nobody"


def assert_each_person_once(harness: Harness, fakes, everyone) -> None:
    assert_nobody_twice(fakes, everyone)
    seen = {person.e164 for person in everyone if harness_knows(harness, person)}
    for crm, counts in records_per_person(census(*fakes), everyone).items():
        assert set(counts) == seen, f"{crm}: missing {sorted(seen - set(counts))[:5]}"


def harness_knows(harness: Harness, person) -> bool:
    from crm_sync.schema import ContactIdentity

    with harness.runtime.sessions() as session:
        return session.scalar(select(ContactIdentity.id).where(ContactIdentity.kind == "phone",
                                                               ContactIdentity.value == person.e164)) is not None


def assert_notes_written_once(hubspot_fake, harness: Harness) -> None:
    """No delivery key was written twice, and the last revision of every delivery reached HubSpot."""
    keys = {row.idempotency_key for row in harness.deliveries("hubspot-main")}
    written = Counter(match.group(1) for note in hubspot_fake.notes.values()
                      for match in [MARKER.search(note["properties"]["hs_note_body"])] if match)
    assert written and max(written.values()) == 1, [key for key, n in written.items() if n > 1]
    assert keys <= set(written)
    assert all(has_marker(hubspot_fake.notes[row.crm_interaction_id]["properties"]["hs_note_body"],
                          row.idempotency_key) for row in harness.deliveries("hubspot-main"))


@pytest.fixture
def soak(make_harness_on, postgres_schema_url, hubspot_fake, kommo_fake):
    """HubSpot (upsert) and Kommo (search-then-create), on PostgreSQL: the production store, real row locks."""
    truncate_postgres(postgres_schema_url)
    overrides = {"timeout_seconds": SOAK_TIMEOUT, "max_attempts": 6, "retry_initial_seconds": 2,
                 "retry_max_seconds": 120}
    harness = make_harness_on(postgres_schema_url, {"hubspot-main": hubspot_settings(hubspot_fake, **overrides),
                                                    "kommo": kommo_settings(kommo_fake, **overrides)})
    return harness, (hubspot_fake, kommo_fake)


def receive_while_draining(harness: Harness, requests, fakes, rng: random.Random, processors: int = 3) -> None:
    """Events are processed by several workers while a drainer per destination keeps delivering, as in production
    (on virtual time, a drainer only delivers what is due: backoffs wait for the settling afterwards)."""
    harness.send(*requests)
    with harness.runtime.sessions() as session:
        event_ids = list(session.scalars(select(Event.id).where(Event.status == "received").order_by(Event.id)))
    stop = threading.Event()

    def keep_draining(name: str) -> None:
        while not stop.is_set():
            if harness.drain(name).stopped != "budget":
                stop.wait(0.05)

    def process(event_id: int) -> str:
        if event_id % 150 == 0:
            for fake in fakes:
                script_permanent_faults(fake, rng)
        planned: set[str] = set()
        return process_event(harness.runtime.sessions, event_id, options=harness.options, planned_for=planned)

    drainers = [threading.Thread(target=keep_draining, args=(name,)) for name in harness.engine.names]
    for drainer in drainers:
        drainer.start()
    try:
        with ThreadPoolExecutor(processors) as pool:
            outcomes = Counter(pool.map(process, event_ids))
    finally:
        stop.set()
        for drainer in drainers:
            drainer.join()
    assert outcomes == {"processed": len(event_ids)}, outcomes


def test_every_fault_at_random_ends_with_each_person_once_in_each_crm(soak):
    harness, fakes = soak
    rng = random.Random(SEED)
    for offset, fake in enumerate(fakes):
        switch_faults_on(fake, SEED + offset)
    everyone = people(PEOPLE)

    receive_while_draining(harness, traffic(rng, everyone, REQUESTS), fakes, rng)
    harness.drain_until_settled(step=SETTLE_STEP)

    rows = harness.deliveries()
    statuses = Counter(row.status for row in rows)
    assert set(statuses) <= {DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD}, statuses
    assert statuses[DeliveryStatus.DEAD] > 0 and statuses[DeliveryStatus.SUCCEEDED] > len(rows) / 2, statuses
    assert all(row.last_error_class and row.last_error for row in rows if row.status == DeliveryStatus.DEAD)
    assert_nobody_twice(fakes, everyone)
    faults_seen = Counter(call.fault for fake in fakes for call in fake.calls)
    assert all(faults_seen[kind] for kind in ("server_error", "rate_limit", "timeout", "after_write", "status"))

    for fake in fakes:
        switch_faults_off(fake)
    for name in harness.engine.names:
        retry_matching(harness.runtime, DeliveryFilter.parse(DeliveryStatus.DEAD, name), dry_run=False)
    harness.drain_until_settled(step=SETTLE_STEP)

    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: len(rows)}
    assert_each_person_once(harness, fakes, everyone)
    assert_notes_written_once(fakes[0], harness)
