"""Planning: inside an event's processing transaction, one delivery row per (interaction, destination).

A row's `revision` is what the CRM should have. It goes up only when the interaction changed in a way worth telling
the CRM — it is new, its state moved forward, its transcript has new messages, its lead data changed — which the
row's `fingerprint` of exactly those fields decides in the upsert itself. So a redelivered or replayed event that
changes nothing plans nothing. A changed one re-arms a succeeded or dead row for a new round (a fresh retry budget);
a row still on its way (pending, failed with its backoff, in flight) keeps its schedule and its round, and sends the
newest data when its turn comes: the drainer records the revision it sent and sees that a newer one is waiting.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Iterable

from functools import cache

from sqlalchemy import bindparam, case, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm_sync.interactions import RecordedInteraction
from crm_sync.schema import Delivery, DeliveryStatus, StoredInteraction
from ingest.db import dialect_of
from ingest.schema import utcnow


def fingerprint(interaction: StoredInteraction | RecordedInteraction) -> str:
    """What a CRM record of the interaction depends on; browsing noise (pages, UTM, agent, tags) is left out."""
    details = interaction.details or {}
    worth_telling: dict[str, Any] = {
        "kind": interaction.kind,
        "state": interaction.state,
        "transcript": [[message.get("key"), message.get("text")] for message in details.get("transcript") or []],
        "lead": details.get("lead"),
    }
    text = json.dumps(worth_telling, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_deliveries(session: Session, interactions: Iterable[RecordedInteraction | None], destinations: Iterable[str],
                    now: datetime | None = None) -> set[str]:
    """Upsert the rows of these interactions (as this transaction recorded them) for every destination; the
    destinations that got new work."""
    by_id = {interaction.id: interaction for interaction in interactions
             if interaction is not None and interaction.contact_id is not None}
    names = sorted(set(destinations))
    if not by_id or not names:
        return set()
    now = now or utcnow()
    rows = [{"destination": name, "interaction_id": interaction.id, "contact_id": interaction.contact_id,
             "fingerprint": fingerprint(interaction), "now": now}
            for _, interaction in sorted(by_id.items()) for name in names]
    return set(session.execute(_upsert(dialect_of(session)), rows).scalars())


@cache
def _upsert(dialect: str):
    """INSERT … ON CONFLICT (interaction_id, destination) DO UPDATE … WHERE the fingerprint changed, RETURNING the
    destination of every row inserted or re-armed. Built once per dialect with bound parameters (an event's
    processing runs it for every event, and building and compiling it anew costs more than running it)."""
    table = Delivery.__table__
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect](table).values(
        destination=bindparam("destination"), interaction_id=bindparam("interaction_id"),
        contact_id=bindparam("contact_id"), fingerprint=bindparam("fingerprint"), revision=1,
        status=DeliveryStatus.PENDING, attempts=0, attempts_at_arming=0, armed_at=bindparam("now"),
        next_attempt_at=bindparam("now"), created_at=bindparam("now"), updated_at=bindparam("now"))
    new, row = insert.excluded, table.c
    finished = or_(row.status == DeliveryStatus.SUCCEEDED, row.status == DeliveryStatus.DEAD)   # no IN: executemany

    def when_finished(then, otherwise):
        return case((finished, then), else_=otherwise)

    return insert.on_conflict_do_update(
        index_elements=[row.interaction_id, row.destination],
        set_={
            "revision": row.revision + 1,
            "fingerprint": new.fingerprint,
            "contact_id": new.contact_id,
            "status": when_finished(DeliveryStatus.PENDING, row.status),
            "next_attempt_at": when_finished(new.next_attempt_at, row.next_attempt_at),
            "armed_at": when_finished(new.armed_at, row.armed_at),
            "attempts_at_arming": when_finished(row.attempts, row.attempts_at_arming),
            "updated_at": new.updated_at,
        },
        where=row.fingerprint != new.fingerprint,
    ).returning(row.destination)
