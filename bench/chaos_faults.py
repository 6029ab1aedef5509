"""The chaos run's faults: fake CRMs failing a share of calls, workers killed with SIGKILL, the broker restarted.

Everything is drawn from one seeded generator, so a failing run can be replayed with the same `--seed` (timing on a
shared machine still varies, so the interleaving does not repeat exactly).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from bench.redis_server import RedisServer
from bench.workers import WorkerProcess
from tests.fakes.base import FakeCRM, Fault

# How the CRM's failure rate splits over the kinds of failure (shares of the rate).
FAULT_MIX = {"server_error": 0.3, "rate_limit": 0.2, "timeout": 0.2, "after_write": 0.3}
CLIENT_TIMEOUT_SECONDS = 0.5   # the destinations' HTTP timeout in the chaos run
HOLD_SECONDS = 1.0             # how long a "timeout" fault holds the request (well past the client's timeout)
SEARCH_LAG_MS = 500            # the CRMs' search index lags behind their writes
RESTART_DELAY_SECONDS = (0.5, 2.0)   # a killed worker is back after this long (a supervisor restarting it)
REDIS_DOWN_SECONDS = 1.0
# When, as shares of the stream's length, the monkey strikes. Not in the first part: a drainer killed mid-batch holds
# its destination's lease for up to 60 s, and the CRMs' first calls (the scripted failures of every kind) go first.
KILL_WINDOW = (0.4, 0.9)
REDIS_WINDOW = (0.3, 0.7)


def switch_crm_faults_on(fake: FakeCRM, failure_rate: float, seed: int) -> None:
    """Random failures at `failure_rate`, after one failure of each kind for certain, and one permanent refusal (a
    revoked token: those deliveries go dead at once), so that a short run has every kind and something to retry."""
    faults = fake.faults
    faults.script(Fault.server_error(), Fault.rate_limit(retry_after=1), Fault.timeout(),
                  Fault.after_write(then="drop"), Fault.respond(401, {"message": "token revoked"}))
    faults.reseed(seed)
    faults.server_error_rate = failure_rate * FAULT_MIX["server_error"]
    faults.rate_limit_rate = failure_rate * FAULT_MIX["rate_limit"]
    faults.timeout_rate = failure_rate * FAULT_MIX["timeout"]
    faults.after_write_rate = failure_rate * FAULT_MIX["after_write"]
    faults.after_write_then = ("500", "drop", "timeout")
    faults.retry_after, faults.hold_seconds, faults.search_lag_ms = 1, HOLD_SECONDS, SEARCH_LAG_MS


def switch_crm_faults_off(fake: FakeCRM) -> None:
    faults = fake.faults
    faults.server_error_rate = faults.rate_limit_rate = faults.timeout_rate = faults.after_write_rate = 0.0
    faults.scripted.clear()


def injected(fake: FakeCRM) -> dict[str, int]:
    """Calls the fake failed on purpose, by kind, and all its calls."""
    counts: dict[str, int] = {"calls": len(fake.calls)}
    for call in list(fake.calls):
        if call.fault:
            kind = f"refused {call.status}" if call.fault == "status" else call.fault
            counts[kind] = counts.get(kind, 0) + 1
    return counts


@dataclass
class Incident:
    at: float        # seconds after the stream started
    what: str


@dataclass
class ChaosMonkey:
    """Kills a random worker (main process and pool together) at random moments and restarts it, and restarts the
    broker once, while the stream is being sent."""

    rng: random.Random
    workers: list[WorkerProcess]
    redis: RedisServer
    kills: int
    seconds: float                        # how long the stream lasts
    at_that_moment: Callable[[], str] = lambda: ""   # what a fault interrupts (work in flight, messages queued)
    incidents: list[Incident] = field(default_factory=list)

    def __post_init__(self) -> None:
        plan = [(self.rng.uniform(*KILL_WINDOW) * self.seconds, self._kill_a_worker) for _ in range(self.kills)]
        plan.append((self.rng.uniform(*REDIS_WINDOW) * self.seconds, self._restart_redis))
        self.plan = sorted(plan, key=lambda item: item[0])

    def run(self, started: float) -> None:
        """Carry out the whole plan on time (from `started`, a time.monotonic()); every act falls in the stream."""
        for at, act in self.plan:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            act(time.monotonic() - started)

    def _kill_a_worker(self, now: float) -> None:
        worker = self.rng.choice(self.workers)
        processes, moment = len(worker.pids()), self.at_that_moment()
        worker.kill()
        down = self.rng.uniform(*RESTART_DELAY_SECONDS)
        self.incidents.append(Incident(now, f"SIGKILL {worker.name} ({processes} processes), back after {down:.1f}s"
                                            f"{_during(moment)}"))
        time.sleep(down)
        worker.start()

    def _restart_redis(self, now: float) -> None:
        moment = self.at_that_moment()
        self.redis.restart(REDIS_DOWN_SECONDS)
        self.incidents.append(Incident(now, f"redis-server killed and restarted empty after {REDIS_DOWN_SECONDS:g}s"
                                            f"{_during(moment)}"))


def _during(moment: str) -> str:
    return f"; at that moment {moment}" if moment else ""
