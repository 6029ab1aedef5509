"""Pipedrive's Search API limit: a burst of new people, and two drains sharing one limit through the database,
stay within it (no 429).
"""
from __future__ import annotations

import threading

import httpx
import pytest

from crm_sync.delivery.clock import SYSTEM_CLOCK
from crm_sync.delivery.ratelimit import CallGate, RateLimitedTransport
from crm_sync.destinations.base import DeliveryResult
from crm_sync.destinations.pipedrive import PipedriveDestination, PipedriveSettings
from tests.destinations.builders import contact, delivery
from tests.destinations.conftest import CLIENT_TIMEOUT
from tests.fakes import pipedrive as fake_pipedrive


@pytest.fixture
def gated_pipedrive(pipedrive_fake, sqlite_runtime):
    """`gated_pipedrive()`: the module on a client whose calls pass a rate gate on the test's database, as a drain
    builds it (no `rate` configured: only Pipedrive's own search limit holds calls back). Each call is one drain."""
    clients: list[httpx.Client] = []

    def build() -> PipedriveDestination:
        gate = CallGate(sqlite_runtime.sessions, "pipedrive-burst", None, SYSTEM_CLOCK)
        clients.append(httpx.Client(timeout=CLIENT_TIMEOUT, transport=RateLimitedTransport(gate)))
        settings = PipedriveSettings(name="pipedrive-burst", kind="pipedrive", base_url=pipedrive_fake.url,
                                     api_token=fake_pipedrive.TOKEN, timeout_seconds=CLIENT_TIMEOUT)
        return PipedriveDestination(settings, clients[-1])

    pipedrive_fake.search_limit = fake_pipedrive.SEARCH_LIMIT
    yield build
    for client in clients:
        client.close()


def new_people(numbers: range) -> list:
    return [delivery(contact(n, email=f"p{n}@burst.example", phone=f"+7916555{n:04d}"), key=f"k-{n}")
            for n in numbers]


def test_a_burst_of_new_people_stays_within_the_search_limit(pipedrive_fake, gated_pipedrive):
    outcomes = gated_pipedrive().deliver_batch(new_people(range(1, 7)))   # 12 searches: over 10 in 2 s unchecked

    assert all(isinstance(outcome, DeliveryResult) for outcome in outcomes), outcomes
    assert pipedrive_fake.count_calls("/search$") == 12
    assert [call for call in pipedrive_fake.calls if call.status == 429] == []


def test_two_drains_share_one_search_limit_through_the_database(pipedrive_fake, gated_pipedrive):
    # Two gates on one database, as two worker processes have (one drain each): one bucket for both.
    drains = [gated_pipedrive(), gated_pipedrive()]
    outcomes: list = []
    threads = [threading.Thread(target=lambda d=d, n=n: outcomes.extend(d.deliver_batch(new_people(n))))
               for d, n in zip(drains, (range(1, 4), range(4, 7)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == 6 and all(isinstance(outcome, DeliveryResult) for outcome in outcomes), outcomes
    assert [call for call in pipedrive_fake.calls if call.status == 429] == []
