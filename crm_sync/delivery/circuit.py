"""The circuit breaker and the destination-wide pause, kept in the destination's state row.

After `circuit_failures` batches in a row that failed transiently with nothing delivered, the destination is paused
for `circuit_cooldown_seconds`, doubling with each re-opening up to `circuit_max_cooldown_seconds`. When the
cool-down is over the breaker is half-open: one delivery is tried; success closes it, failure opens it again for
longer. A CRM's "not now" (a rate limit, HubSpot's account migration: `DeliveryError.asks_to_wait`) pauses the whole
destination until its Retry-After, since the limit is the account's, and is no failure for the breaker. Only the
lease holder writes these fields, so a plain read-modify-write is safe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_sync.destinations.base import DeliveryError, DestinationSettings, PermanentError
from crm_sync.metrics import circuit_opened, rate_limit_waited
from crm_sync.schema import DestinationState

ESTIMATE_WEIGHT = 0.3   # how fast the calls-per-delivery estimate follows the latest batch
# Past this many doublings any cool-down is at its max; a larger power of two would overflow a float after about
# a thousand re-openings (11 days of a CRM down at the 900 s cap).
MAX_COOLDOWN_DOUBLINGS = 30
MAX_BATCH_LIMIT = 100   # the largest batch any CRM module takes


@dataclass(frozen=True)
class Gate:
    """What the state row allows right now."""

    paused_until: datetime | None   # circuit open, or throttled: attempt nothing before this
    reason: str | None = None       # "circuit_open" or "throttled"
    trial: bool = False             # half-open: a single delivery decides
    calls_per_delivery: float = 1.0
    batch_limit: int | None = None  # None: the destination's full batch size


@dataclass
class BatchOutcome:
    deliveries: int = 0
    calls: int = 0
    succeeded: int = 0
    failed: int = 0                 # transient, not counting the CRM's "not now" (rate limits, migrations)
    rate_limited_for: float | None = None
    last_error: str | None = field(default=None)

    def add(self, outcome: object, retry_in: float | None = None) -> None:
        """One delivery's outcome; `retry_in`: when the engine tries it again (for a "not now" that gave no
        delay, the engine's own choice is the destination's pause)."""
        self.deliveries += 1
        if not isinstance(outcome, DeliveryError):
            self.succeeded += 1
            return
        self.last_error = f"{outcome.reason}: {outcome.message}"
        if isinstance(outcome, PermanentError):
            return
        if outcome.asks_to_wait:
            self.rate_limited_for = max(self.rate_limited_for or 0.0, outcome.retry_after or retry_in or 0.0)
        else:
            self.failed += 1


def gate(session: Session, settings: DestinationSettings, now: datetime) -> Gate:
    state = session.get(DestinationState, settings.name, populate_existing=True)
    if state is None:
        return Gate(None)
    if state.circuit_open_until and state.circuit_open_until > now:
        return Gate(state.circuit_open_until, "circuit_open", calls_per_delivery=state.calls_per_delivery)
    if state.throttled_until and state.throttled_until > now:
        return Gate(state.throttled_until, "throttled", calls_per_delivery=state.calls_per_delivery)
    half_open = state.consecutive_failures >= settings.circuit_failures
    return Gate(None, trial=half_open, calls_per_delivery=state.calls_per_delivery, batch_limit=state.batch_limit)


def record_batch(session: Session, settings: DestinationSettings, outcome: BatchOutcome, now: datetime) -> None:
    state = session.execute(select(DestinationState).where(DestinationState.destination == settings.name)
                            .with_for_update().execution_options(populate_existing=True)).scalar_one()
    answered = outcome.deliveries and not outcome.failed and outcome.rate_limited_for is None
    if outcome.succeeded or answered:   # the CRM works (even if it refused some deliveries as invalid)
        state.consecutive_failures, state.circuit_opened, state.circuit_open_until = 0, 0, None
    elif outcome.failed:
        state.consecutive_failures += 1
        state.last_error = (outcome.last_error or "")[:2000]
        if state.consecutive_failures >= settings.circuit_failures:
            state.circuit_opened += 1
            circuit_opened(settings.name)
            cooldown = min(settings.circuit_max_cooldown_seconds,
                           settings.circuit_cooldown_seconds
                           * 2 ** min(state.circuit_opened - 1, MAX_COOLDOWN_DOUBLINGS))
            state.circuit_open_until = now + timedelta(seconds=cooldown)
    if outcome.rate_limited_for:
        rate_limit_waited(settings.name, outcome.rate_limited_for, "crm")
        until = now + timedelta(seconds=outcome.rate_limited_for)
        state.throttled_until = max(until, state.throttled_until) if state.throttled_until else until
    if outcome.deliveries:
        state.calls_per_delivery += ESTIMATE_WEIGHT * (outcome.calls / outcome.deliveries - state.calls_per_delivery)
        _resize(state, outcome)
    state.updated_at = now


def _resize(state: DestinationState, outcome: BatchOutcome) -> None:
    """One failure in a batch call can fail every delivery in it: after such a batch, halve the next one; after a
    batch that got through, double it again (no limit once it is back above the largest batch)."""
    if outcome.failed and not outcome.succeeded:
        state.batch_limit = max(1, outcome.deliveries // 2)
    elif outcome.succeeded and state.batch_limit is not None:
        state.batch_limit = None if state.batch_limit * 2 > MAX_BATCH_LIMIT else state.batch_limit * 2


def throttle(session: Session, name: str, until: datetime, now: datetime) -> None:
    state = session.get(DestinationState, name, populate_existing=True)
    state.throttled_until, state.updated_at = until, now
