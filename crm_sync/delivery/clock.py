"""The delivery engine's sense of time. Everything it schedules reads `now()` and waits with `sleep()`, so a test
can run backoff, cool-downs and leases on virtual time instead of sleeping."""
from __future__ import annotations

import time
from datetime import datetime, timezone


class Clock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def epoch(self) -> float:
        """Unix seconds of `now()` (the rate bucket's clock)."""
        return self.now().timestamp()

    def skipped_seconds(self) -> float:
        """Virtual time this clock has jumped over, for everything including the database (0 for a real clock).
        The lease reads the database's clock plus this, so a test that skips time runs leases out as well."""
        return 0.0


SYSTEM_CLOCK = Clock()
