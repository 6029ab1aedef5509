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
from functools import cache
from typing import Callable, TypeVar

from sqlalchemy import bindparam, case, null, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.delivery.retry import RetryPolicy
from crm_sync.delivery.snapshots import Claimed
from crm_sync.destinations.base import DeliveryError, DeliveryRequest, DeliveryResult, PermanentError
from crm_sync.identity import attach_crm_record, lock_live_contacts
from crm_sync.schema import CRM_KIND_PREFIX, ContactIdentity, Delivery, DeliveryStatus
from ingest.db import transaction

log = logging.getLogger(__name__)
T = TypeVar("T")
CONFLICT_SQLSTATES = frozenset({"40P01", "40001", "55P03"})   # deadlock, serialization, NOWAIT lock taken
CONFLICT_RETRIES = 8
MAX_MESSAGE = 4000


Outcome = DeliveryResult | DeliveryError
IDENTITIES = ContactIdentity.__table__
_KNOWN_LINKS = select(IDENTITIES.c.contact_id, IDENTITIES.c.value, IDENTITIES.c.url).where(
    IDENTITIES.c.kind == bindparam("kind"), IDENTITIES.c.value.in_(bindparam("values", expanding=True)))


def record_outcomes(sessions: sessionmaker[Session], name: str,
                    outcomes: list[tuple[Claimed, DeliveryRequest | None, Outcome]], now: datetime,
                    policy: RetryPolicy, primary_policy: str = "keep_first") -> dict[int, str | None]:
    """Record a batch's outcomes in one transaction; each delivery's new status (None: no longer ours)."""
    def write(session: Session) -> dict[int, str | None]:
        _link_records(session, name, [(request, outcome) for _, request, outcome in outcomes
                                      if isinstance(outcome, DeliveryResult)], primary_policy)
        return {claimed.delivery_id: _succeeded(session, claimed, outcome, now)
                if isinstance(outcome, DeliveryResult) else _failed(session, claimed, outcome, now, policy)
                for claimed, _, outcome in outcomes}
    return retry_on_conflict(sessions, write)


def _link_records(session: Session, name: str, done: list[tuple[DeliveryRequest, DeliveryResult]],
                  primary_policy: str) -> None:
    """Link each CRM record to its contact, in contact id order; links we already hold as they are are skipped."""
    wanted = {(request.contact.contact_id, str(result.contact_record_id)): result.record_url
              for request, result in done if result.contact_record_id}
    if not wanted:
        return
    known = {(row.contact_id, row.value): row.url for row in session.execute(_KNOWN_LINKS, {
        "kind": f"{CRM_KIND_PREFIX}{name}", "values": sorted({record for _, record in wanted})})}
    links = [(contact_id, record_id, url) for (contact_id, record_id), url in sorted(wanted.items())
             if (contact_id, record_id) not in known or url not in (None, known[(contact_id, record_id)])]
    if not links:
        return
    live = lock_live_contacts(session, {contact_id for contact_id, _, _ in links})   # at once, in id order
    for contact_id, record_id, url in links:
        _, merged = attach_crm_record(session, live[contact_id], name, record_id, url=url,
                                      primary_policy=primary_policy, held=frozenset(live.values()))
        if merged:   # rare: contacts of this batch may now live on in another one (all of them are still ours)
            live = lock_live_contacts(session, set(live), held=frozenset(live.values()))


def _succeeded(session: Session, claimed: Claimed, result: DeliveryResult, now: datetime) -> str | None:
    row = session.execute(_success_update(), {
        "b_delivery_id": claimed.delivery_id, "b_attempt": claimed.attempt, "b_revision": claimed.revision,
        "b_now": now, "b_crm_contact_id": _text(result.contact_record_id),
        "b_crm_interaction_id": _text(result.interaction_record_id), "b_crm_url": result.record_url}).first()
    return row.status if row else None


@cache
def _success_update():
    """Built once (it runs for every delivered delivery): succeeded, or pending again if new data came meanwhile."""
    row = Delivery.__table__.c
    newer = row.revision > bindparam("b_revision")
    return (update(Delivery.__table__)
            .where(row.id == bindparam("b_delivery_id"), row.status == DeliveryStatus.IN_FLIGHT,
                   row.attempts == bindparam("b_attempt"))
            .values(status=case((newer, DeliveryStatus.PENDING), else_=DeliveryStatus.SUCCEEDED),
                    next_attempt_at=case((newer, row.next_attempt_at), else_=null()),
                    delivered_revision=bindparam("b_revision"), succeeded_at=bindparam("b_now"),
                    updated_at=bindparam("b_now"), crm_contact_id=bindparam("b_crm_contact_id"),
                    crm_interaction_id=bindparam("b_crm_interaction_id"), crm_url=bindparam("b_crm_url"),
                    last_status=None, last_error_class=None, last_error=None)
            .returning(row.status))


def _failed(session: Session, claimed: Claimed, error: DeliveryError, now: datetime, policy: RetryPolicy
            ) -> str | None:
    row = session.execute(select(Delivery).where(*_still_ours(claimed)).with_for_update()
                          .execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None:
        return None
    row.last_status, row.last_error_class = error.status, error.reason[:64]
    row.last_error, row.updated_at = error.message[:MAX_MESSAGE], now
    in_round, age = row.attempts - row.attempts_at_arming, (now - row.armed_at).total_seconds()
    if isinstance(error, PermanentError) and row.revision > claimed.revision:
        row.status, row.next_attempt_at = DeliveryStatus.PENDING, now   # the newer data may be acceptable
    elif isinstance(error, PermanentError):
        row.status, row.next_attempt_at = DeliveryStatus.DEAD, None
    elif policy.gives_up(in_round, age):
        row.status, row.next_attempt_at = DeliveryStatus.DEAD, None
        row.last_error = (f"gave up after {in_round} attempt(s) over {age:.0f}s (max_attempts "
                          f"{policy.max_attempts}, max_age_seconds {policy.max_age_seconds:g}): {error.message}"
                          )[:MAX_MESSAGE]
    else:
        row.status = DeliveryStatus.FAILED
        row.next_attempt_at = now + timedelta(seconds=policy.delay(in_round, error.retry_after))
    return row.status


def _still_ours(claimed: Claimed) -> tuple:
    return (Delivery.id == claimed.delivery_id, Delivery.status == DeliveryStatus.IN_FLIGHT,
            Delivery.attempts == claimed.attempt)


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
