"""A contact's values: every name, company, email or phone a provider sent, and the display values chosen from them.

Nothing is overwritten: each distinct value is a row with its first and last sighting. Sightings are ordered by the
event's arrival (event id, then position in the payload), not by processing time, so the primary policy picks the same
display values whatever order the events are processed or replayed in:

- `keep_first` (default): the value seen first stays primary; newer ones are recorded beside it;
- `prefer_newest`: the value seen most recently is primary.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Literal

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from crm_sync.facts import Observed
from crm_sync.schema import Contact, ContactValue
from ingest.schema import utcnow

PrimaryPolicy = Literal["keep_first", "prefer_newest"]
PRIMARY_POLICIES: tuple[str, ...] = ("keep_first", "prefer_newest")
DISPLAY_FIELDS = {"name": "name", "company": "company", "description": "description",
                  "email": "primary_email", "phone": "primary_phone"}
NORMALISED_FIELDS = {"email", "phone"}
EMPTY_DISPLAY: dict[str, str | None] = dict.fromkeys(DISPLAY_FIELDS.values())
VALUES, CONTACTS = ContactValue.__table__, Contact.__table__
_VALUE_COLUMNS = ("field", "value", "value_hash", "normalised", "first_event_id", "first_position",
                  "last_event_id", "last_position", "first_seen_at", "last_seen_at", "provider", "source")
_SIGHTING_COLUMNS = ("first_event_id", "first_position", "first_seen_at", "last_event_id", "last_position",
                     "last_seen_at", "provider", "source")
# Built once: every event runs these, and building a statement anew costs more CPU than running it.
_STORED_VALUES = select(*(VALUES.c[name] for name in _VALUE_COLUMNS)).where(
    VALUES.c.contact_id == bindparam("contact_id"), VALUES.c.value_hash.in_(bindparam("hashes", expanding=True)))
_DISPLAY_VALUES = select(*(VALUES.c[name] for name in _VALUE_COLUMNS)).where(
    VALUES.c.contact_id == bindparam("contact_id"), VALUES.c.field.in_(list(DISPLAY_FIELDS)))
_INSERT_VALUES = insert(VALUES)                                              # run with one row per new value
_UPDATE_VALUE = update(VALUES).where(  # SET: the columns given
    VALUES.c.contact_id == bindparam("row_contact_id"), VALUES.c.field == bindparam("row_field"),
    VALUES.c.value_hash == bindparam("row_hash"))
_SHOWN = select(*(CONTACTS.c[column] for column in DISPLAY_FIELDS.values())).where(
    CONTACTS.c.id == bindparam("contact_id"))
_SET_DISPLAY = update(CONTACTS).where(CONTACTS.c.id == bindparam("contact_id"))  # SET: the columns given


@dataclass
class ValueRow:
    """One row of contact_values as processing reads and changes it."""

    field: str
    value: str
    value_hash: str
    normalised: str | None
    first_event_id: int
    first_position: int
    last_event_id: int
    last_position: int
    first_seen_at: datetime
    last_seen_at: datetime
    provider: str
    source: str

    @classmethod
    def first_sighting(cls, observed: Observed, hashed: str, position: int, origin) -> "ValueRow":
        return cls(field=observed.field, value=observed.value, value_hash=hashed, normalised=observed.normalised,
                   first_event_id=origin.event_id, first_position=position, last_event_id=origin.event_id,
                   last_position=position, first_seen_at=origin.received_at, last_seen_at=origin.received_at,
                   provider=origin.provider, source=origin.source)

    def columns(self) -> dict:
        return {name: getattr(self, name) for name in _VALUE_COLUMNS}

    def sightings(self) -> dict:
        return {name: getattr(self, name) for name in _SIGHTING_COLUMNS}


def value_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def record_values(session: Session, contact_id: int, sightings: Iterable[tuple[int, Observed]], origin) -> bool:
    """Add or extend the rows for what this event observed (`(position, value)` pairs); True if anything changed."""
    sightings = list(sightings)
    if not sightings:
        return False
    new, extended = apply_sightings(_stored_values(session, contact_id, sightings), sightings, origin)
    if new:
        session.execute(_INSERT_VALUES, [{"contact_id": contact_id, **row.columns()} for row in new])
    update_sightings(session, contact_id, extended)
    return bool(new or extended)


def apply_sightings(known: dict[tuple[str, str], ValueRow], sightings: Iterable[tuple[int, Observed]], origin
                    ) -> tuple[list[ValueRow], list[ValueRow]]:
    """Add the sightings to `known` (a contact's rows by (field, hash), changed in place): the rows they add, and the
    rows already there that they extend."""
    new: dict[tuple[str, str], ValueRow] = {}        # inserted with whatever the later sightings add
    extended: dict[tuple[str, str], ValueRow] = {}
    for position, observed in sightings:
        key = (observed.field, value_hash(observed.value))
        row = known.get(key)
        if row is None:
            row = known[key] = new[key] = ValueRow.first_sighting(observed, key[1], position, origin)
        elif _extend(row, origin.event_id, position, origin.received_at, origin.provider, origin.source) \
                and key not in new:
            extended[key] = row
    return list(new.values()), list(extended.values())


def insert_values(session: Session, rows: list[tuple[int, ValueRow]]) -> None:
    """New rows, `(contact_id, row)`, of any number of contacts in one statement."""
    if rows:
        session.execute(_INSERT_VALUES, [{"contact_id": contact_id, **row.columns()} for contact_id, row in rows])


def update_sightings(session: Session, contact_id: int, rows: list[ValueRow]) -> None:
    if rows:
        session.execute(_UPDATE_VALUE, [{"row_contact_id": contact_id, "row_field": row.field,
                                         "row_hash": row.value_hash, **row.sightings()} for row in rows])


def _stored_values(session: Session, contact_id: int, sightings: list[tuple[int, Observed]]
                   ) -> dict[tuple[str, str], ValueRow]:
    rows = session.execute(_STORED_VALUES, {
        "contact_id": contact_id, "hashes": sorted({value_hash(o.value) for _, o in sightings})}).mappings()
    return {(row["field"], row["value_hash"]): ValueRow(**row) for row in rows}


def _extend(row: ContactValue | ValueRow, event_id: int, position: int, seen_at, provider: str, source: str) -> bool:
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
    rows = [ValueRow(**row) for row in session.execute(_DISPLAY_VALUES, {"contact_id": contact_id}).mappings()]
    shown = session.execute(_SHOWN, {"contact_id": contact_id}).one()._asdict()
    chosen = choose_display(rows, policy)
    if chosen == shown:
        return False
    session.execute(_SET_DISPLAY, {"contact_id": contact_id, **chosen, "updated_at": utcnow()})
    return True


def choose_display(rows: Iterable[ValueRow], policy: PrimaryPolicy) -> dict[str, str | None]:
    """{display column: value} chosen by the policy from a contact's value rows."""
    rows = [row for row in rows if row.field in DISPLAY_FIELDS]
    chosen: dict[str, str | None] = dict(EMPTY_DISPLAY)
    for field, column in DISPLAY_FIELDS.items():
        candidates = [row for row in rows if row.field == field]
        if field in NORMALISED_FIELDS:
            candidates = [row for row in candidates if row.normalised]
        if candidates:
            best = min(candidates, key=_primary_order(policy))
            chosen[column] = best.normalised if field in NORMALISED_FIELDS else best.value
    return chosen


def set_displays(session: Session, displays: dict[int, dict[str, str | None]]) -> None:
    """Write several contacts' display values (and `updated_at`) in one statement."""
    if displays:
        now = utcnow()
        session.execute(_SET_DISPLAY, [{"contact_id": contact_id, **chosen, "updated_at": now}
                                       for contact_id, chosen in sorted(displays.items())])


def _primary_order(policy: PrimaryPolicy):
    if policy == "prefer_newest":
        # Newest event first; within one event, the value the provider listed first.
        return lambda row: (-row.last_event_id, row.last_position, row.value)
    return lambda row: (row.first_event_id, row.first_position, row.value)


def touch(session: Session, contact_id: int) -> None:
    session.execute(_SET_DISPLAY, {"contact_id": contact_id, "updated_at": utcnow()})
