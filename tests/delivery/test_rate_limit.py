"""The shared rate limit: no window of the configured duration ever carries more calls than allowed, however many
drainers and processes take from the bucket."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from crm_sync.delivery.engine import DeliveryEngine
from crm_sync.delivery.lease import ensure_state
from crm_sync.delivery.ratelimit import Bucket, take
from crm_sync.destinations.base import RateLimit
from crm_sync.schema import DeliveryStatus
from tests.conftest import truncate_postgres
from tests.contacts.provider_requests import jivo_chat
from tests.destinations.conftest import WEBHOOK_SECRET
from tests.fakes.base import FakeRequest
from tests.fakes.faults import Fault, Faults
from tests.fakes.webhook import WebhookReceiver


def most_in_any_window(moments: list[float], window: float) -> int:
    """The largest number of moments inside one half-open window [t, t + window)."""
    moments, best, start = sorted(moments), 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class VendorWindow(Faults):
    """The vendor's own limit: a request beyond `count` within the last `per` seconds is answered 429."""

    count: int = 10
    per: float = 1.0
    arrivals: list[float] = field(default_factory=list)

    def next_fault(self, request: FakeRequest) -> Fault | None:
        now = time.monotonic()
        with self._lock:
            over = sum(1 for moment in self.arrivals if now - moment < self.per) >= self.count
            self.arrivals.append(now)
        return Fault.rate_limit(retry_after=1) if over else super().next_fault(request)


def setup_bucket(runtime, name: str) -> None:
    with runtime.sessions.begin() as session:
        ensure_state(session, name, runtime.delivery.clock.now())


@pytest.mark.parametrize("rate", ["100/10s", "2/s", "7/s", "1/5s", "650000/1d"])
def test_the_bucket_never_allows_more_than_the_limit_in_any_window(runtime, rate):
    limit = RateLimit.parse(rate)
    bucket = Bucket.for_limit(limit)
    setup_bucket(runtime, "crm")
    now, taken = 1_000_000.0, []
    for _ in range(min(3 * limit.count, 400)):   # as fast as the bucket lets us, on virtual time
        while (wait := take(runtime.sessions, "crm", bucket, now)) is not None:
            now += wait
        taken.append(now)

    assert most_in_any_window(taken, limit.per_seconds) <= limit.count
    horizon = taken[-1] - taken[0]
    assert len(taken) - 1 >= 0.85 * limit.count * horizon / limit.per_seconds   # and not needlessly slow


def test_concurrent_takers_share_one_bucket(runtime):
    limit = RateLimit.parse("40/1s")
    bucket = Bucket.for_limit(limit)
    setup_bucket(runtime, "crm")
    stop = time.time() + 1.0
    taken: list[float] = []

    def hammer() -> None:
        while time.time() < stop:
            if take(runtime.sessions, "crm", bucket, time.time()) is None:
                taken.append(time.time())

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(taken) <= bucket.capacity + bucket.refill_per_second * (time.time() - started) + 1
    assert len(taken) >= bucket.capacity   # each token went to exactly one taker, and the takers did get tokens


def test_a_burst_drained_by_two_concurrent_drainers_never_draws_a_429(make_harness_on, postgres_schema_url):
    """On PostgreSQL (the bucket's SQL runs on SQLite in the tests above): real time, so once is enough."""
    truncate_postgres(postgres_schema_url)
    with WebhookReceiver().running() as receiver:
        receiver.faults = VendorWindow(count=20, per=2.0)
        harness = make_harness_on(postgres_schema_url, {"audit": {
            "kind": "webhook", "url": f"{receiver.url}/hooks/crm", "secret": WEBHOOK_SECRET, "rate": "20/2s",
            "timeout_seconds": 2}})
        harness.receive(*[jivo_chat(500 + n, phone=f"+791612305{n:02d}") for n in range(25)])

        def drainer() -> None:
            engine = DeliveryEngine(harness.runtime.settings, harness.runtime.sessions, time_budget=1.0)
            while engine.due():
                if engine.drain("audit").stopped == "busy":
                    time.sleep(0.05)

        threads = [threading.Thread(target=drainer) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 25}
    assert [call.status for call in receiver.calls if call.status != 200] == []
    assert most_in_any_window(receiver.faults.arrivals, 2.0) <= 20
