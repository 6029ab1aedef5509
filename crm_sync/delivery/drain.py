"""Draining one destination: lease, claim due deliveries in batches, deliver, record, repeat while work is due.

One drain holds the destination's lease (so it is the only one on any machine), one `httpx.Client` whose every call
passes the shared rate bucket, and a time budget: when it runs out with work still due, the report says so and the
task hands over to a fresh one, so a busy destination never monopolises a worker.
"""
from __future__ import annotations

import logging
import math
import ssl
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import httpx
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.delivery import circuit
from crm_sync.delivery.claims import claim_due, has_due
from crm_sync.delivery.clock import SYSTEM_CLOCK, Clock
from crm_sync.delivery.lease import LEASE_SECONDS, Heartbeat, LeasedTransport, lease_clock, release_lease, \
    take_lease
from crm_sync.delivery.ratelimit import MAX_CALL_WAIT_SECONDS, CallGate, RateLimitedTransport, seconds_until
from crm_sync.delivery.results import Outcome, record_outcomes
from crm_sync.delivery.retry import RetryPolicy
from crm_sync.delivery.snapshots import Claimed, build_requests
from crm_sync.destinations import get_destination_class
from crm_sync.destinations.base import DeliveryError, DeliveryRequest, DeliveryResult, Destination, \
    DestinationSettings, PermanentError, TransientError, describe_exception
from crm_sync.metrics import TimedTransport
from crm_sync.schema import DeliveryStatus
from crm_sync.observe import delivery_attempt_ended
from ingest.db import database_unavailable, transaction

log = logging.getLogger(__name__)
DEFAULT_BATCH = 50
DRAIN_SECONDS = 30.0


@dataclass
class DrainReport:
    destination: str
    succeeded: int = 0
    failed: int = 0
    dead: int = 0
    batches: int = 0
    # idle (nothing due), busy (another drainer holds the lease), paused (breaker open or throttled),
    # budget (time is up with work still due: drain again), unknown (not configured)
    stopped: str = "idle"
    resume_at: datetime | None = None

    @property
    def more_due(self) -> bool:
        return self.stopped == "budget"


class Drainer:
    def __init__(self, settings: DestinationSettings, sessions: sessionmaker[Session], clock: Clock = SYSTEM_CLOCK,
                 primary_policy: str = "keep_first", time_budget: float = DRAIN_SECONDS,
                 lease_seconds: float = LEASE_SECONDS):
        self.settings, self.sessions, self.clock = settings, sessions, clock
        self.primary_policy, self.time_budget, self.lease_seconds = primary_policy, time_budget, lease_seconds
        self.policy = RetryPolicy.of(settings)
        self.max_batch = getattr(settings, "batch_size", None) or DEFAULT_BATCH
        self.owner = uuid.uuid4().hex

    @property
    def name(self) -> str:
        return self.settings.name

    def run(self) -> DrainReport:
        report = DrainReport(self.name)
        deadline = time.monotonic() + self.time_budget
        while True:
            taken_at = lease_clock(self.clock)
            if not take_lease(self.sessions, self.name, self.owner, self.clock, self.lease_seconds):
                report.stopped = "busy"
                return report
            try:
                with Heartbeat(self.sessions, self.name, self.owner, self.clock, self.lease_seconds,
                               taken_at) as lease:
                    # While the lease is held nobody else is woken: deliveries planned in the window join this
                    # drain's first batch instead of each costing a drain of its own.
                    self.clock.sleep(self.settings.batch_window_seconds)
                    self._drain_leased(report, deadline, lease)
            finally:
                release_lease(self.sessions, self.name, self.owner)
            # Work planned while we were letting go of the lease found it still held and published nothing:
            # look once more now that it is free.
            if report.stopped != "idle" or not self._has_due():
                return report
            if time.monotonic() >= deadline:
                report.stopped = "budget"
                return report

    def _has_due(self) -> bool:
        with self.sessions() as session:
            return has_due(session, self.name, self.clock.now())

    def _drain_leased(self, report: DrainReport, deadline: float, lease: Heartbeat) -> None:
        gate = CallGate(self.sessions, self.name, self.settings.rate_limit, self.clock)
        with ExitStack() as resources:
            destination: Destination | None = None
            while time.monotonic() < deadline:
                if lease.lost:
                    report.stopped = "busy"
                    return
                # Built before anything is claimed: a module that fails to start must not strand claimed rows.
                destination = destination or self._connect(gate, lease, resources)
                with transaction(self.sessions) as session:
                    size = self._batch_size(session, gate, report)
                    claimed = claim_due(session, self.name, self.clock.now(), size) if size else []
                if not claimed:
                    report.stopped = "idle" if size else report.stopped
                    return
                self._deliver(destination, claimed, gate, report)
            report.stopped = "budget"

    def _connect(self, gate: CallGate, lease: Heartbeat, resources: ExitStack) -> Destination:
        """The CRM module on this drain's client: every call passes the rate gate, then goes out only while the
        lease surely holds for its timeout (checked after the gate's wait), and is timed."""
        call_seconds = min(self.settings.timeout_seconds, self.lease_seconds / 2)
        timed = TimedTransport(self.name, httpx.HTTPTransport(verify=tls_context()))
        transport = RateLimitedTransport(gate, LeasedTransport(lease, call_seconds, timed))
        http = resources.enter_context(httpx.Client(timeout=self.settings.timeout_seconds, transport=transport))
        return get_destination_class(self.settings.kind)(self.settings, http)

    def _batch_size(self, session: Session, gate: CallGate, report: DrainReport) -> int:
        """How many deliveries the next batch may take (0: stop, the report says until when)."""
        now = self.clock.now()
        allowed = circuit.gate(session, self.settings, now)
        if allowed.paused_until:
            report.stopped, report.resume_at = "paused", allowed.paused_until
            return 0
        if allowed.trial:
            return 1
        largest = min(self.max_batch, allowed.batch_limit or self.max_batch)
        if gate.bucket is None:
            return largest
        per_delivery = max(allowed.calls_per_delivery, 0.01)
        epoch = self.clock.epoch()
        wait = seconds_until(session, self.name, gate.bucket, epoch, per_delivery)
        if wait > MAX_CALL_WAIT_SECONDS:
            report.stopped, report.resume_at = "paused", now + timedelta(seconds=wait)
            circuit.throttle(session, self.name, report.resume_at, now)
            return 0
        affordable = gate.bucket.capacity + gate.bucket.refill_per_second * self.time_budget
        return max(1, min(largest, math.floor(affordable / per_delivery)))

    def _deliver(self, destination: Destination, claimed: list[Claimed], gate: CallGate, report: DrainReport) -> None:
        with self.sessions() as session:
            requests = build_requests(session, self.name, claimed, self.primary_policy)
        ready = [item for item in claimed if item.delivery_id in requests]
        calls_before = gate.calls
        outcomes = self._call(destination, [requests[item.delivery_id] for item in ready])
        batch = circuit.BatchOutcome(calls=gate.calls - calls_before)
        results = [(item, requests[item.delivery_id], outcome) for item, outcome in zip(ready, outcomes)]
        results += [(item, None, PermanentError("no_contact", "the interaction has no contact to deliver"))
                    for item in claimed if item.delivery_id not in requests]
        now = self.clock.now()
        recorded, written = self._record(results, now)
        for (item, request, outcome), (_, _, outcome_written) in zip(results, written):
            status, retry_in = recorded[item.delivery_id]
            if request is not None:   # what the CRM said: the breaker's and the batch size's evidence
                batch.add(outcome, retry_in)
            self._count(item, outcome_written, status, report)
        with transaction(self.sessions) as session:
            circuit.record_batch(session, self.settings, batch, now)
        report.batches += 1

    def _record(self, results: list[tuple[Claimed, DeliveryRequest | None, Outcome]], now: datetime):
        """Record the outcomes; if that fails for a reason other than the database being away (a bug, an answer
        the store cannot hold), record an internal error for each delivery instead, so that none is left in flight
        to be sent again and again, and its attempts count towards max_attempts. What was recorded, and how."""
        try:
            return record_outcomes(self.sessions, self.name, results, now, self.policy, self.primary_policy), results
        except Exception as exc:
            if database_unavailable(exc):
                raise   # the rows stay in flight; the next drainer takes them again once the lease runs out
            log.exception("destination %s: recording a batch's outcomes failed", self.name)
            error = TransientError("internal_error", f"recording the outcome failed: {describe_exception(exc)}")
            written = [(item, None, error) for item, _, _ in results]
            return record_outcomes(self.sessions, self.name, written, now, self.policy, self.primary_policy), written

    def _call(self, destination: Destination, requests: list) -> list[DeliveryResult | DeliveryError]:
        if not requests:
            return []
        try:
            outcomes = destination.deliver_batch(requests)
            if len(outcomes) != len(requests):
                raise RuntimeError(f"deliver_batch answered {len(outcomes)} outcomes for {len(requests)} requests")
            return outcomes
        except DeliveryError as exc:
            return [exc] * len(requests)
        except Exception as exc:  # a bug in a CRM module: retried like an outage, replayable after the fix
            log.exception("destination %s: deliver_batch failed", self.name)
            return [TransientError("internal_error", describe_exception(exc))] * len(requests)

    def _count(self, item: Claimed, outcome, status: str | None, report: DrainReport) -> None:
        delivery_attempt_ended(self.name, item, outcome, status)  # one log line per attempt, and the metrics
        if status is None:
            return
        if isinstance(outcome, DeliveryResult):
            report.succeeded += 1
        elif status == DeliveryStatus.DEAD:
            report.dead += 1
        else:
            report.failed += 1


@cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (httpx's default, SSL_CERT_FILE honoured): building one loads the CA
    bundle, which costs more than a CRM call."""
    return httpx.create_ssl_context()
