"""A contact's values: every name, company, email or phone a provider sent, and the display values chosen from them.

Nothing is overwritten: each distinct value is a row with its first and last sighting. Sightings are ordered by the
event's arrival (event id, then position in the payload), not by processing time, so the primary policy picks the same
display values whatever order the events are processed or replayed in:

- `keep_first` (default): the value seen first stays primary; newer ones are recorded beside it;
- `prefer_newest`: the value seen most recently is primary.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_sync.facts import Observed
from crm_sync.schema import Contact, ContactValue
from ingest.schema import utcnow

PrimaryPolicy = Literal["keep_first", "prefer_newest"]
PRIMARY_POLICIES: tuple[str, ...] = ("keep_first", "prefer_newest")
DISPLAY_FIELDS = {"name": "name", "company": "company", "description": "description",
                  "email": "primary_email", "phone": "primary_phone"}
NORMALISED_FIELDS = {"email", "phone"}


def value_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def record_values(session: Session, contact_id: int, sightings: Iterable[tuple[int, Observed]], origin) -> bool:
    """Add or extend the rows for what this event observed (`(position, value)` pairs); True if anything changed."""
    sightings = list(sightings)
    if not sightings:
        return False
    existing = {(row.field, row.value_hash): row for row in session.scalars(
        select(ContactValue).where(ContactValue.contact_id == contact_id,
                                   ContactValue.value_hash.in_({value_hash(o.value) for _, o in sightings}))
        .execution_options(populate_existing=True))}
    changed = False
    for position, observed in sightings:
        key = (observed.field, value_hash(observed.value))
        row = existing.get(key)
        if row is None:
            row = existing[key] = ContactValue(
                contact_id=contact_id, field=observed.field, value=observed.value, value_hash=key[1],
                normalised=observed.normalised, first_event_id=origin.event_id, first_position=position,
                last_event_id=origin.event_id, last_position=position, first_seen_at=origin.received_at,
                last_seen_at=origin.received_at, provider=origin.provider, source=origin.source,
            )
            session.add(row)
            changed = True
        else:
            changed |= _extend(row, origin.event_id, position, origin.received_at, origin.provider, origin.source)
    session.flush()
    return changed


def _extend(row: ContactValue, event_id: int, position: int, seen_at, provider: str, source: str) -> bool:
    changed = False
    if (event_id, position) < (row.first_event_id, row.first_position):
        row.first_event_id, row.first_position, row.first_seen_at = event_id, position, seen_at
        row.provider, row.source = provider, source
        changed = True
    if (event_id, position) > (row.last_event_id, row.last_position):
        row.last_event_id, row.last_position, row.last_seen_at = event_id, position, seen_at
        changed = True
    return changed


def move_values(session: Session, loser: int, survivor: int) -> None:
    """A merge: the loser's values join the survivor's; the same value seen on both keeps both sightings' span."""
    survivor_rows = {(row.field, row.value_hash): row for row in session.scalars(
        select(ContactValue).where(ContactValue.contact_id == survivor).execution_options(populate_existing=True))}
    for row in session.scalars(select(ContactValue).where(ContactValue.contact_id == loser)
                               .execution_options(populate_existing=True)).all():
        twin = survivor_rows.get((row.field, row.value_hash))
        if twin is None:
            row.contact_id = survivor
            continue
        _extend(twin, row.first_event_id, row.first_position, row.first_seen_at, row.provider, row.source)
        if (row.last_event_id, row.last_position) > (twin.last_event_id, twin.last_position):
            twin.last_event_id, twin.last_position, twin.last_seen_at = row.last_event_id, row.last_position, \
                row.last_seen_at
        session.delete(row)
    session.flush()


def refresh_display(session: Session, contact_id: int, policy: PrimaryPolicy) -> bool:
    """Choose the contact's display values by the policy; True if any of them changed."""
    rows = session.scalars(select(ContactValue).where(ContactValue.contact_id == contact_id,
                                                      ContactValue.field.in_(DISPLAY_FIELDS))).all()
    chosen: dict[str, str | None] = {column: None for column in DISPLAY_FIELDS.values()}
    for field, column in DISPLAY_FIELDS.items():
        candidates = [row for row in rows if row.field == field]
        if field in NORMALISED_FIELDS:
            candidates = [row for row in candidates if row.normalised]
        if candidates:
            best = min(candidates, key=_primary_order(policy))
            chosen[column] = best.normalised if field in NORMALISED_FIELDS else best.value
    contact = session.get(Contact, contact_id, populate_existing=True)
    if all(getattr(contact, column) == value for column, value in chosen.items()):
        return False
    session.execute(update(Contact).where(Contact.id == contact_id).values(**chosen, updated_at=utcnow())
                    .execution_options(synchronize_session=False))
    return True


def _primary_order(policy: PrimaryPolicy):
    if policy == "prefer_newest":
        # Newest event first; within one event, the value the provider listed first.
        return lambda row: (-row.last_event_id, row.last_position, row.value)
    return lambda row: (row.first_event_id, row.first_position, row.value)


def touch(session: Session, contact_id: int) -> None:
    session.execute(update(Contact).where(Contact.id == contact_id).values(updated_at=utcnow())
                    .execution_options(synchronize_session=False))
