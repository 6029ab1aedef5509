"""The drain lease: at most one drainer per destination across every worker on every machine.

Taking it is one conditional UPDATE (free, expired, or already ours), so two drainers racing for it cannot both win.
Holding it serialises a destination's deliveries, which the search-then-create CRM modules rely on to never create
one person twice. A heartbeat thread keeps it while a slow batch runs; a drainer that dies stops renewing, and the
lease runs out for the next one, who claims the orphaned in-flight deliveries again.

Its end is set and compared by the database's clock, the one clock every worker shares: a worker whose own clock
runs ahead must not see another's lease as run out.

A drainer also stops calling the CRM once its lease may have run out, before any renewal could tell it so: a worker
frozen past the lease's end (a paused VM or container, heavy swapping) or cut off from the database while the CRM
still answers would otherwise finish its batch as first attempts, which look nothing up, while the next drainer sends
the same deliveries again (`LeasedTransport`).
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

import httpx
from sqlalchemy import DateTime, func, or_, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ColumnElement

from crm_sync.delivery.clock import Clock
from crm_sync.destinations.base import TransientError
from crm_sync.schema import DestinationState
from ingest.db import dialect_of, insert_for, transaction

# A worker that dies holds its destinations up for at most this long; renewed every quarter of it, the lease
# survives three failed renewals in a row (a database hiccup of up to 15 s).
LEASE_SECONDS = 20.0
log = logging.getLogger(__name__)


def ensure_state(session: Session, name: str, now: datetime) -> None:
    session.execute(insert_for(session)(DestinationState).values(destination=name, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["destination"]))


def database_now(session: Session, clock: Clock, plus_seconds: float = 0.0) -> ColumnElement:
    """The database's time `plus_seconds` on, as SQL. A test clock's skipped time (`Clock.skipped_seconds`) is added,
    so that a jump of virtual time runs leases out too. SQLite compares the column's text, so there it is written
    in the column's own format ('YYYY-MM-DD HH:MM:SS.ffffff', UTC; SQLite's clock has milliseconds)."""
    seconds = clock.skipped_seconds() + plus_seconds
    if dialect_of(session) == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{seconds:+.6f} seconds").concat("000")
    return func.clock_timestamp(type_=DateTime(timezone=True)) + timedelta(seconds=seconds)


def take_lease(sessions: sessionmaker[Session], name: str, owner: str, clock: Clock,
               seconds: float = LEASE_SECONDS) -> bool:
    with transaction(sessions) as session:
        now = clock.now()
        ensure_state(session, name, now)
        result = session.execute(
            update(DestinationState)
            .where(DestinationState.destination == name,
                   or_(DestinationState.lease_until.is_(None), DestinationState.lease_until <= database_now(
                       session, clock), DestinationState.lease_owner == owner))
            .values(lease_owner=owner, lease_until=database_now(session, clock, seconds), updated_at=now))
        return result.rowcount == 1


def renew_lease(sessions: sessionmaker[Session], name: str, owner: str, clock: Clock,
                seconds: float = LEASE_SECONDS) -> bool:
    """False if the lease is no longer ours (it ran out and another drainer took it)."""
    with transaction(sessions) as session:
        result = session.execute(
            update(DestinationState)
            .where(DestinationState.destination == name, DestinationState.lease_owner == owner)
            .values(lease_until=database_now(session, clock, seconds)))
        return result.rowcount == 1


def release_lease(sessions: sessionmaker[Session], name: str, owner: str) -> None:
    with transaction(sessions) as session:
        session.execute(update(DestinationState)
                        .where(DestinationState.destination == name, DestinationState.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None))


class LeaseLost(TransientError):
    """The lease may have run out: no further CRM call. The batch's deliveries are retried by whoever holds it next,
    as deliveries tried before (looked up before anything is written again)."""

    def __init__(self, name: str):
        super().__init__("lease_lost", f"destination {name}: the drain lease may have run out (a paused worker, or "
                                       "renewals failing); no further call to the CRM in this drain")


def lease_clock(clock: Clock) -> float:
    """Local seconds that keep pace with the database's clock as the lease reads it (the virtual time a test skips
    included): a process frozen for a minute finds a minute gone."""
    return time.monotonic() + clock.skipped_seconds()


class Heartbeat:
    """Renews a lease every quarter of its length from a thread, for as long as the `with` block runs, and knows
    locally until when the lease is surely still ours: `taken_at` (`lease_clock`, read before the lease was taken)
    plus its length, moved on by each renewal."""

    def __init__(self, sessions: sessionmaker[Session], name: str, owner: str, clock: Clock,
                 seconds: float = LEASE_SECONDS, taken_at: float | None = None):
        self.sessions, self.name, self.owner, self.clock, self.seconds = sessions, name, owner, clock, seconds
        self._valid_until = (lease_clock(clock) if taken_at is None else taken_at) + seconds
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{name}", daemon=True)

    @property
    def lost(self) -> bool:
        """Another drainer holds the lease now, or may: take no further batch."""
        return self._lost.is_set()

    def check_before_call(self, call_seconds: float) -> None:
        """Raise LeaseLost unless the lease is ours for `call_seconds` more, so that a call to the CRM ends inside
        it; once it is not, it stays lost for this drain."""
        if not self._lost.is_set() and lease_clock(self.clock) + call_seconds >= self._valid_until:
            log.warning("destination %s: the drain lease may have run out (not renewed in time); stopping this "
                        "drain's calls to the CRM", self.name)
            self._lost.set()
        if self._lost.is_set():
            raise LeaseLost(self.name)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 4):
            try:
                started = lease_clock(self.clock)
                if not renew_lease(self.sessions, self.name, self.owner, self.clock, self.seconds):
                    log.warning("destination %s: the drain lease was lost; results are recorded only for "
                                "deliveries still ours", self.name)
                    self._lost.set()
                    return
                self._valid_until = started + self.seconds
            except Exception:  # the database hiccuped: try again at the next beat, the lease has time left
                log.exception("destination %s: could not renew the drain lease", self.name)


class LeasedTransport(httpx.BaseTransport):
    """The drain's transport nearest the wire: no request goes out unless the lease holds for the call's timeout."""

    def __init__(self, lease: Heartbeat, call_seconds: float, inner: httpx.BaseTransport):
        self.lease, self.call_seconds, self.inner = lease, call_seconds, inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.lease.check_before_call(self.call_seconds)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
