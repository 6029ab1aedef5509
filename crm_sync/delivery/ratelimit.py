"""A destination's `rate` ("100/10s"), shared by every worker on every machine: a token bucket in its state row.

Every HTTP call to the CRM takes one token through the drain's `httpx` transport, with one conditional UPDATE that
refills and takes at once (plain arithmetic on Unix seconds, so it is the same statement on SQLite and PostgreSQL
and two takers can never spend the same token). The bucket holds a twentieth of the limit as a burst and refills the
rest steadily, sized so that no window of the limit's duration — with a 5% margin for network jitter — ever carries
more calls than the limit: the CRM never has a reason to answer 429.

Some vendors also limit one family of endpoints on its own, whatever the plan (Pipedrive's Search API: 10 calls per
2 s). A CRM module marks such a request with an `EndpointLimit` in the request's httpx extensions; the gate then also
takes a token from that endpoint's bucket, kept and shared the same way in a state row of its own.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import case, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.delivery.clock import Clock
from crm_sync.delivery.lease import ensure_state
from crm_sync.destinations.base import RateLimit, TransientError
from crm_sync.metrics import rate_limit_waited
from crm_sync.schema import DestinationState
from ingest.db import transaction

BURST_FRACTION = 0.05
WINDOW_MARGIN = 0.05
# A call that would wait longer than this for a token fails as rate-limited instead (and is retried later), so a
# drain never sleeps for minutes holding a worker.
MAX_CALL_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Bucket:
    capacity: float
    refill_per_second: float

    @classmethod
    def for_limit(cls, limit: RateLimit) -> "Bucket":
        """At most `count` calls in any window of `per_seconds`: in a half-open window of length T a bucket allows
        capacity + ceil(rate * T) - 1 takes, which the refill rate makes exactly `count` for T = per * 1.05."""
        capacity = max(1, math.floor(limit.count * BURST_FRACTION))
        return cls(capacity, (limit.count - capacity + 1) / (limit.per_seconds * (1 + WINDOW_MARGIN)))

    def level(self, tokens: float, tokens_at: float, now: float) -> float:
        return min(self.capacity, tokens + max(0.0, now - tokens_at) * self.refill_per_second)

    def wait_for(self, level: float, needed: float) -> float:
        """Seconds until `level` grows to `needed` (at most the capacity); 0.0 if it is there."""
        missing = min(needed, self.capacity) - level
        return 0.0 if missing <= EPSILON else max(missing / self.refill_per_second, MIN_WAIT_SECONDS)


EPSILON = 1e-6              # token arithmetic in floats: 0.9999999999 tokens is one token
MIN_WAIT_SECONDS = 0.001

ENDPOINT_LIMIT_EXTENSION = "crm_ingest.endpoint_limit"
_STATE_NAME_LENGTH = 100    # DestinationState.destination


@dataclass(frozen=True)
class EndpointLimit:
    """A vendor's limit on some of its endpoints, on top of the destination's `rate`, e.g. ("search", 10 per 2 s)."""

    name: str
    limit: RateLimit

    @property
    def extensions(self) -> dict[str, Any]:
        """What a request passes as `extensions=` to be held by this limit too (httpx hands them to the transport;
        the HTTP layer below ignores keys it does not know, so nothing of it goes over the wire)."""
        return {ENDPOINT_LIMIT_EXTENSION: self}

    def state_name(self, destination: str) -> str:
        """The state row of this endpoint's bucket. Destination names cannot hold ':', so it never names a
        destination; a name too long for the column keeps a digest of itself, so two long names never share one."""
        name = f"{destination}:{self.name}"
        if len(name) <= _STATE_NAME_LENGTH:
            return name
        digest = hashlib.sha256(destination.encode()).hexdigest()[:12]
        return f"{destination[:_STATE_NAME_LENGTH - len(self.name) - 14]}~{digest}:{self.name}"


def take(sessions: sessionmaker[Session], name: str, bucket: Bucket, now: float, count: float = 1.0
         ) -> float | None:
    """Take `count` tokens: None when taken; otherwise nothing is taken and the seconds to wait for them."""
    refilled = _least(DestinationState.tokens + _greatest(now - DestinationState.tokens_at, 0.0)
                      * bucket.refill_per_second, bucket.capacity)
    with transaction(sessions) as session:
        taken = session.execute(
            update(DestinationState)
            .where(DestinationState.destination == name, refilled + EPSILON >= count)
            .values(tokens=refilled - count, tokens_at=_greatest(DestinationState.tokens_at, now))
        ).rowcount
        if taken:
            return None
        # Another taker got there between our read of the clock and the update: try again at once.
        return seconds_until(session, name, bucket, now, count) or MIN_WAIT_SECONDS


def seconds_until(session: Session, name: str, bucket: Bucket, now: float, count: float) -> float:
    """How long until the bucket holds `count` tokens (at most its capacity); 0.0 if it does now."""
    row = session.execute(select(DestinationState.tokens, DestinationState.tokens_at)
                          .where(DestinationState.destination == name)).one_or_none()
    if row is None:
        raise LookupError(f"destination {name!r} has no state row (ensure_state first)")
    return bucket.wait_for(bucket.level(row.tokens, row.tokens_at, now), count)


def _least(a, b):
    return case((a < b, a), else_=b)


def _greatest(a, b):
    return case((a > b, a), else_=b)


class CallGate:
    """Counts the drain's calls to the CRM and holds each one until its buckets have a token: the destination's (with
    a rate configured) and, for a request marked with an `EndpointLimit`, that endpoint's (always: the vendor's limit
    applies whatever `rate` says)."""

    def __init__(self, sessions: sessionmaker[Session], name: str, limit: RateLimit | None, clock: Clock):
        self.sessions, self.name, self.clock = sessions, name, clock
        self.limit = limit
        self.bucket = Bucket.for_limit(limit) if limit else None
        self.calls = 0
        self._endpoint_buckets: dict[str, Bucket] = {}   # state row name → bucket, for rows this gate has ensured
        if self.bucket is not None:
            with transaction(sessions) as session:
                ensure_state(session, name, clock.now())

    def before_call(self, endpoint: EndpointLimit | None = None) -> None:
        self.calls += 1
        # The endpoint's bucket first: it is the narrower one, whose wait is the long one, so the destination's token,
        # taken last, is spent the moment the call goes out (the windows the buckets are sized for stay true).
        if endpoint is not None:
            self._wait_for_token(endpoint.state_name(self.name), self._endpoint_bucket(endpoint), endpoint.limit)
        if self.bucket is not None:
            self._wait_for_token(self.name, self.bucket, self.limit)

    def _endpoint_bucket(self, endpoint: EndpointLimit) -> Bucket:
        state_name = endpoint.state_name(self.name)
        if state_name not in self._endpoint_buckets:
            with transaction(self.sessions) as session:
                ensure_state(session, state_name, self.clock.now())
            self._endpoint_buckets[state_name] = Bucket.for_limit(endpoint.limit)
        return self._endpoint_buckets[state_name]

    def _wait_for_token(self, state_name: str, bucket: Bucket, limit: RateLimit) -> None:
        while (wait := take(self.sessions, state_name, bucket, self.clock.epoch())) is not None:
            if wait > MAX_CALL_WAIT_SECONDS:
                raise TransientError("rate_limit", f"{state_name}: the shared rate limit ({limit.count} per "
                                     f"{limit.per_seconds:g}s) has no call left for {wait:.1f}s",
                                     retry_after=wait)
            rate_limit_waited(self.name, wait, "bucket")
            self.clock.sleep(wait)


class RateLimitedTransport(httpx.BaseTransport):
    """The drain's transport: every request passes the gate first (with its endpoint's limit, if it names one), then
    goes out as usual."""

    def __init__(self, gate: CallGate, inner: httpx.BaseTransport | None = None):
        self.gate = gate
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.gate.before_call(request.extensions.get(ENDPOINT_LIMIT_EXTENSION))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
