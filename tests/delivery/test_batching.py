"""Batching where the vendor offers it: under a burst, far fewer API calls than deliveries."""
from __future__ import annotations

from crm_sync.schema import DeliveryStatus
from tests.contacts.provider_requests import jivo_chat, roistat_lead
from tests.delivery.conftest import VirtualClock, hubspot_settings, kommo_settings
from tests.support.recording import statements_while


def burst(n: int):
    return [jivo_chat(600 + i, name=f"Person {i}", phone=f"+791612306{i:02d}") if i % 2 else
            roistat_lead(f"B-{i}", name=f"Person {i}", phone=f"+791612306{i:02d}") for i in range(n)]


def test_a_burst_reaches_hubspot_in_one_contact_read_one_upsert_and_one_note_batch(make_harness, hubspot_fake):
    harness = make_harness({"hubspot-main": hubspot_settings(hubspot_fake)})
    harness.receive(*burst(60))

    report = harness.drain("hubspot-main")

    assert (report.succeeded, report.batches) == (60, 1)
    assert len(hubspot_fake.contacts) == 60 and len(hubspot_fake.notes) == 60
    assert [f"{call.method} {call.path}" for call in hubspot_fake.calls] == [   # three calls for sixty deliveries
        "POST /crm/v3/objects/contacts/batch/read", "POST /crm/v3/objects/contacts/batch/upsert",
        "POST /crm/v3/objects/notes/batch/create"]


def test_draining_sixty_deliveries_takes_as_many_statements_as_draining_two(make_harness, hubspot_fake):
    """Outcomes are recorded set-wise: a statement per delivery would make a large batch cost far more."""
    harness = make_harness({"hubspot-main": hubspot_settings(hubspot_fake)})
    harness.receive(*burst(2))
    small = len(statements_while(harness.runtime.engine, lambda: harness.drain("hubspot-main")))
    harness.receive(*[jivo_chat(700 + i, email=f"later{i}@example.com") for i in range(60)])

    large = len(statements_while(harness.runtime.engine, lambda: harness.drain("hubspot-main")))

    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 62}
    assert large == small


def test_a_burst_reaches_kommo_in_a_few_complex_lead_calls(make_harness, kommo_fake):
    harness = make_harness({"kommo": kommo_settings(kommo_fake)})
    harness.receive(*burst(40))

    harness.drain_until_settled()

    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 40}
    assert len(kommo_fake.leads) == 40 and len(kommo_fake.contacts) == 40
    assert kommo_fake.count_calls("leads/complex") == 1 and kommo_fake.count_calls("POST /api/v4/leads/notes") == 1
    writes = [call for call in kommo_fake.calls if call.method != "GET"]
    assert len(writes) == 2   # one delivery at a time would have made 80 writes
    assert len(kommo_fake.calls) <= 40 + 3   # a phone search per new person, one recent listing, the two writes


class ArrivalsDuringTheWindow(VirtualClock):
    """The drain's clock: while the drain waits out its batch window, more chats are processed."""

    def __init__(self, arrive) -> None:
        super().__init__()
        self.arrive, self.slept = arrive, []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.arrive is not None:
            arrive, self.arrive = self.arrive, None
            arrive()
        super().sleep(seconds)


def drain_with_arrivals(make_harness, hubspot_fake, **settings):
    harness = make_harness({"hubspot-main": hubspot_settings(hubspot_fake, **settings)})
    harness.receive(*burst(2))
    clock = ArrivalsDuringTheWindow(lambda: harness.receive(
        *[jivo_chat(800 + i, email=f"window{i}@example.com") for i in range(5)]))
    harness.engine.clock = clock
    return harness, clock, harness.drain("hubspot-main")


def test_deliveries_planned_during_the_batch_window_go_out_in_the_drains_first_batch(make_harness, hubspot_fake):
    harness, clock, report = drain_with_arrivals(make_harness, hubspot_fake, batch_window_seconds=0.2)

    assert clock.slept[0] == 0.2
    assert (report.succeeded, report.batches) == (7, 1)
    assert len(hubspot_fake.calls) == 3   # one contact read, one contact upsert and one note batch for all seven


def test_the_batch_window_is_fifty_milliseconds_unless_configured(make_harness, hubspot_fake):
    _, clock, _ = drain_with_arrivals(make_harness, hubspot_fake)

    assert clock.slept[0] == 0.05
