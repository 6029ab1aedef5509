"""When a failed delivery is tried again, and when it is given up: tenacity's strategies, the schedule in the row.

A delivery's attempts are spread over many drains (and machines), so no tenacity loop runs around them; the
strategies are asked one question each time a transient failure is recorded, from the counts kept in the database.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tenacity import RetryCallState, stop_after_attempt, stop_after_delay, wait_exponential, wait_random_exponential

from crm_sync.destinations.base import DestinationSettings

# After a write whose answer was lost, the next attempt waits at least this many of the destination's timeouts: the
# request itself may have waited a whole timeout at the CRM's door, and the CRM gets as long again to commit it.
UNKNOWN_OUTCOME_TIMEOUTS = 2.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    max_age_seconds: float
    initial_seconds: float
    max_seconds: float
    # The shortest wait after a write whose outcome is unknown (its answer was lost after it was sent): a CRM may
    # commit it after the client gave up, so the retry's look-ups must come after such a late write has landed.
    unknown_outcome_seconds: float = 0.0

    @classmethod
    def of(cls, settings: DestinationSettings) -> "RetryPolicy":
        return cls(settings.max_attempts, settings.max_age_seconds, settings.retry_initial_seconds,
                   settings.retry_max_seconds, UNKNOWN_OUTCOME_TIMEOUTS * settings.timeout_seconds)

    def gives_up(self, attempts: int, age_seconds: float, counts_attempts: bool = True) -> bool:
        """After `attempts` failed attempts in this round, the first `age_seconds` ago: is it dead? A refusal that
        is no failed attempt (`counts_attempts` False: the CRM said "not now") is ended by the age alone."""
        stop = stop_after_delay(self.max_age_seconds)
        if counts_attempts:
            stop = stop_after_attempt(self.max_attempts) | stop
        return stop(_state(attempts, age_seconds))

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt: somewhere in the second half of a window that doubles per attempt
        (capped), but never sooner than the CRM asked for.

        Not full jitter (anywhere from 0): a retry drawn near 0 s came back within the same drain, hit a CRM that
        had just failed, and spent an attempt of the budget on it. Half a window still spreads a burst of failures.
        """
        return max(self._in_second_half(attempts), retry_after or 0.0)

    def not_now_delay(self, attempts: int, waited_seconds: float) -> float:
        """Seconds until the next attempt after a CRM's "not now" that did not say for how long. Such answers count
        no attempt, so the window grows with the time this round has been waiting instead (the largest doubling of
        the first window not past it, capped), and the wait is at least half of it: each one is longer, about,
        than the last, and none is an immediate retry."""
        grown = 1 + math.floor(math.log2(waited_seconds / self.initial_seconds)) \
            if waited_seconds >= self.initial_seconds else 1
        return self._in_second_half(max(attempts, grown))

    def _in_second_half(self, attempts: int) -> float:
        """Half the window for this attempt, plus a random part of the other half (tenacity adds the two)."""
        half = self.initial_seconds / 2, self.max_seconds / 2
        wait = wait_exponential(multiplier=half[0], max=half[1]) + wait_random_exponential(multiplier=half[0],
                                                                                            max=half[1])
        return wait(_state(attempts, 0.0))


def _state(attempts: int, age_seconds: float) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempts)
    state.start_time, state.outcome_timestamp = 0.0, max(0.0, age_seconds)
    return state
