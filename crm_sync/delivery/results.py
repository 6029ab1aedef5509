"""Recording what happened to a batch of claimed deliveries, in one short transaction.

Every write is conditional on the delivery still being the one this drain claimed (in flight, same attempt), so a
drainer that lost its lease can never overwrite the newer attempt's outcome. Successes link their CRM record to the
contact first (contacts before deliveries, the same lock order as an event's processing) so Jivo's `crm_link` and
the contact API show it; a newer revision that arrived meanwhile puts the delivery back in the queue.
"""
from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta
from typing import Callable, NamedTuple, TypeVar

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.crm_links import attach_crm_record, link_crm_records
from crm_sync.delivery.retry import RetryPolicy
from crm_sync.delivery.snapshots import Claimed
from crm_sync.destinations.base import MAX_ERROR_MESSAGE, DeliveryError, DeliveryRequest, DeliveryResult, PermanentError
from crm_sync.identity import lock_live_contacts
from crm_sync.schema import CRM_KIND_PREFIX, ContactIdentity, Delivery, DeliveryStatus
from ingest.db import transaction

log = logging.getLogger(__name__)
T = TypeVar("T")
CONFLICT_SQLSTATES = frozenset({"40P01", "40001", "55P03"})   # deadlock, serialization, NOWAIT lock taken
CONFLICT_RETRIES = 8


Outcome = DeliveryResult | DeliveryError


class Recorded(NamedTuple):
    status: str | None             # the delivery's new status; None: no longer ours, nothing written
    retry_in: float | None = None  # failed: seconds until its next attempt


IDENTITIES = ContactIdentity.__table__
_KNOWN_LINKS = select(IDENTITIES.c.contact_id, IDENTITIES.c.value, IDENTITIES.c.url).where(
    IDENTITIES.c.kind == bindparam("kind"), IDENTITIES.c.value.in_(bindparam("values", expanding=True)))
DELIVERIES = Delivery.__table__
_LOCK_DELIVERIES = (select(DELIVERIES.c.id, DELIVERIES.c.status, DELIVERIES.c.attempts, DELIVERIES.c.revision,
                           DELIVERIES.c.attempts_at_arming, DELIVERIES.c.armed_at, DELIVERIES.c.next_attempt_at)
                    .where(DELIVERIES.c.id.in_(bindparam("ids", expanding=True)))
                    .order_by(DELIVERIES.c.id).with_for_update())
_SUCCESS_UPDATE = update(DELIVERIES).where(DELIVERIES.c.id == bindparam("b_id")).values(
    status=bindparam("b_status"), next_attempt_at=bindparam("b_next_attempt_at"),
    delivered_revision=bindparam("b_revision"), succeeded_at=bindparam("b_now"), updated_at=bindparam("b_now"),
    crm_contact_id=bindparam("b_crm_contact_id"), crm_interaction_id=bindparam("b_crm_interaction_id"),
    crm_url=bindparam("b_crm_url"), attempts_at_arming=bindparam("b_attempts_at_arming"),
    armed_at=bindparam("b_armed_at"), last_status=None, last_error_class=None, last_error=None)
_FAILURE_UPDATE = update(DELIVERIES).where(DELIVERIES.c.id == bindparam("b_id")).values(
    status=bindparam("b_status"), next_attempt_at=bindparam("b_next_attempt_at"), updated_at=bindparam("b_now"),
    attempts_at_arming=bindparam("b_attempts_at_arming"), armed_at=bindparam("b_armed_at"),
    last_status=bindparam("b_last_status"), last_error_class=bindparam("b_last_error_class"),
    last_error=bindparam("b_last_error"))


def record_outcomes(sessions: sessionmaker[Session], name: str,
                    outcomes: list[tuple[Claimed, DeliveryRequest | None, Outcome]], now: datetime,
                    policy: RetryPolicy, primary_policy: str = "keep_first") -> dict[int, Recorded]:
    """Record a batch's outcomes in one transaction; what became of each delivery.

    A fixed number of statements whatever the batch size: the links in one upsert, the deliveries locked in one
    SELECT and written in one executemany per kind of outcome.
    """
    def write(session: Session) -> dict[int, Recorded]:
        _link_records(session, name, [(request, outcome) for _, request, outcome in outcomes
                                      if isinstance(outcome, DeliveryResult)], primary_policy)
        return _record_statuses(session, outcomes, now, policy)
    return retry_on_conflict(sessions, write)


def _link_records(session: Session, name: str, done: list[tuple[DeliveryRequest, DeliveryResult]],
                  primary_policy: str) -> None:
    """Link each CRM record to its contact; links we already hold as they are are skipped.

    Every record wanted by one contact of the batch goes into one upsert. A record that is already another
    contact's, or that the CRM gave to two contacts of this batch (it found one person behind both), takes the
    one-at-a-time path that merges them, in contact id order.
    """
    wanted = {(request.contact.contact_id, str(result.contact_record_id)): result.record_url
              for request, result in done if result.contact_record_id}
    if not wanted:
        return
    kind = f"{CRM_KIND_PREFIX}{name}"
    known = {(row.contact_id, row.value): row.url for row in session.execute(_KNOWN_LINKS, {
        "kind": kind, "values": sorted({record for _, record in wanted})})}
    links = [(contact_id, record_id, url) for (contact_id, record_id), url in sorted(wanted.items())
             if (contact_id, record_id) not in known or url not in (None, known[(contact_id, record_id)])]
    if not links:
        return
    live = lock_live_contacts(session, {contact_id for contact_id, _, _ in links})   # at once, in id order
    first_of_record: dict[str, tuple[int, str, str | None]] = {}
    one_by_one = [link for link in links if first_of_record.setdefault(link[1], link) is not link]
    owners = link_crm_records(session, name, [(live[contact_id], record_id, url)
                                              for contact_id, record_id, url in first_of_record.values()])
    one_by_one += [link for link in first_of_record.values() if owners[link[1]] != live[link[0]]]
    for contact_id, record_id, url in sorted(one_by_one):
        _, merged = attach_crm_record(session, live[contact_id], name, record_id, url=url,
                                      primary_policy=primary_policy, held=frozenset(live.values()))
        if merged:   # rare: contacts of this batch may now live on in another one (all of them are still ours)
            live = lock_live_contacts(session, set(live), held=frozenset(live.values()))


def _record_statuses(session: Session, outcomes: list[tuple[Claimed, DeliveryRequest | None, Outcome]],
                     now: datetime, policy: RetryPolicy) -> dict[int, Recorded]:
    """Lock the batch's deliveries (in id order), decide each one's new state, write them; a delivery that is no
    longer in flight with this drain's attempt (another drainer took it over) is left as it is."""
    rows = {row.id: row for row in session.execute(_LOCK_DELIVERIES, {
        "ids": sorted({claimed.delivery_id for claimed, _, _ in outcomes})})}
    statuses: dict[int, Recorded] = {}
    writes: dict[bool, list[dict]] = {True: [], False: []}
    for claimed, _, outcome in outcomes:
        row = rows.get(claimed.delivery_id)
        if row is None or row.status != DeliveryStatus.IN_FLIGHT or row.attempts != claimed.attempt:
            statuses[claimed.delivery_id] = Recorded(None)
            continue
        succeeded = isinstance(outcome, DeliveryResult)
        values = _success(row, claimed, outcome, now) if succeeded else _failure(row, claimed, outcome, now, policy)
        writes[succeeded].append(values)
        due = values["b_next_attempt_at"]
        retry_in = (due - now).total_seconds() if values["b_status"] == DeliveryStatus.FAILED else None
        statuses[claimed.delivery_id] = Recorded(values["b_status"], retry_in)
    for succeeded, values in writes.items():
        if values:
            session.execute(_SUCCESS_UPDATE if succeeded else _FAILURE_UPDATE, values)
    return statuses


def _success(row: Row, claimed: Claimed, result: DeliveryResult, now: datetime) -> dict:
    """Succeeded, or pending again (keeping its due time) if a newer revision came while it was in flight: that one
    starts a retry budget of its own, as planning gives a revision that comes after a finished one."""
    newer = row.revision > claimed.revision
    arming, armed_at = (row.attempts, now) if newer else (row.attempts_at_arming, row.armed_at)
    return {"b_id": row.id, "b_status": DeliveryStatus.PENDING if newer else DeliveryStatus.SUCCEEDED,
            "b_next_attempt_at": row.next_attempt_at if newer else None, "b_revision": claimed.revision,
            "b_attempts_at_arming": arming, "b_armed_at": armed_at,
            "b_now": now, "b_crm_contact_id": _text(result.contact_record_id),
            "b_crm_interaction_id": _text(result.interaction_record_id), "b_crm_url": result.record_url}


def _failure(row: Row, claimed: Claimed, error: DeliveryError, now: datetime, policy: RetryPolicy) -> dict:
    # A CRM's "not now" (rate limit, migration) is no failed attempt: the claim's attempt is given back to this
    # round's budget by moving the round's start. `attempts` itself keeps counting, because a module looks for its
    # own earlier write whenever attempt > 1 and a throttled call may follow a write that landed in the same attempt.
    given_back = 1 if error.asks_to_wait else 0
    arming, armed_at = row.attempts_at_arming + given_back, row.armed_at
    in_round, age = row.attempts - arming, (now - row.armed_at).total_seconds()
    message = error.message
    if isinstance(error, PermanentError) and row.revision > claimed.revision:
        # The newer data may be acceptable; it starts a retry budget of its own.
        status, next_attempt_at, arming, armed_at = DeliveryStatus.PENDING, now, row.attempts, now
    elif isinstance(error, PermanentError):
        status, next_attempt_at = DeliveryStatus.DEAD, None
    elif policy.gives_up(in_round, age, counts_attempts=not given_back):
        status, next_attempt_at = DeliveryStatus.DEAD, None
        tried = f"{age:.0f}s of being told to wait" if given_back else f"{in_round} attempt(s) over {age:.0f}s"
        message = (f"gave up after {tried} (max_attempts {policy.max_attempts}, "
                   f"max_age_seconds {policy.max_age_seconds:g}): {error.message}")
    else:
        status = DeliveryStatus.FAILED
        next_attempt_at = now + timedelta(seconds=_retry_delay(error, in_round, age, policy))
    return {"b_id": row.id, "b_status": status, "b_next_attempt_at": next_attempt_at, "b_now": now,
            "b_attempts_at_arming": arming, "b_armed_at": armed_at, "b_last_status": error.status,
            "b_last_error_class": error.reason[:64], "b_last_error": message[:MAX_ERROR_MESSAGE]}


def _retry_delay(error: DeliveryError, in_round: int, age: float, policy: RetryPolicy) -> float:
    """A "not now" without a delay (a 429 with no Retry-After) grows its wait with the round's age, as its attempts
    are not counted; the drain pauses the whole destination for it as for a Retry-After.

    A write whose answer was lost (it timed out, or the connection dropped after it was sent) may still be committed
    by the CRM after we gave up: its retry waits at least `unknown_outcome_seconds` (twice the destination's
    timeout), so that its look-ups find such a late write instead of racing it and writing a second record."""
    if error.asks_to_wait and not error.retry_after:
        return policy.not_now_delay(in_round, age)
    delay = policy.delay(in_round, error.retry_after)
    return max(delay, policy.unknown_outcome_seconds) if error.outcome_unknown else delay


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:255]


def retry_on_conflict(sessions: sessionmaker[Session], write: Callable[[Session], T]) -> T:
    """Run `write` in a transaction, again at once when PostgreSQL reports a conflict with a concurrent one."""
    tries = 0
    while True:
        tries += 1
        try:
            with transaction(sessions) as session:
                return write(session)
        except OperationalError as exc:
            if tries >= CONFLICT_RETRIES or getattr(exc.orig, "sqlstate", None) not in CONFLICT_SQLSTATES:
                raise
            log.info("delivery result: conflict with a concurrent transaction, retrying")
            time.sleep(random.uniform(0, 0.01 * tries))
