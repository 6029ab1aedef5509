"""A CRM that commits a write after the client gave up: the request goes unanswered, and the write lands later.

Kommo has no idempotency of its own, so a write that lands after our timeout and after the retry's look-ups makes a
second record. The moment it lands is on the test's virtual clock: every request the fake receives at or after that
moment (and `land()`) finds it written, none before it does; no test waits for real time to pass.
"""
from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta

from tests.delivery.conftest import VirtualClock
from tests.fakes.base import FakeCRM, FakeRequest, FakeResponse


class LateWrite:
    def __init__(self, fake: FakeCRM, match: str, after_seconds: float, clock: VirtualClock):
        self.fake, self.match, self.after, self.clock = fake, re.compile(match), after_seconds, clock
        self.held: FakeRequest | None = None
        self.lands_at: datetime | None = None
        self.landed = False
        self._lock = threading.Lock()
        self._dispatch = fake.dispatch
        fake.dispatch = self._serve   # this fake instance only

    def land(self) -> None:
        """Commit the held write if its moment has come."""
        with self._lock:
            due = self.held is not None and not self.landed and self.clock.now() >= self.lands_at
            self.landed = self.landed or due
        if due:
            self._dispatch(self.held)

    def _serve(self, request: FakeRequest) -> FakeResponse:
        self.land()
        with self._lock:
            hold = self.held is None and self.match.search(f"{request.method} {request.path}") is not None
            if hold:
                self.held, self.lands_at = request, self.clock.now() + timedelta(seconds=self.after)
        if not hold:
            return self._dispatch(request)
        self.fake.hold(self.fake.faults.hold_seconds)   # long past the client's timeout: nobody reads the answer
        return self.fake.server_error()
