"""The contacts a processing transaction creates: inserted for the whole message at once, their values written and
their display values chosen at the end of the transaction, each kind of write in one statement.

A new person used to cost three statements of its own: the contact's INSERT, its values' INSERT and its display
values' UPDATE. A contact this transaction creates is seen by nobody else before the commit, and every value it has
comes from this transaction, so:

- `reserve` inserts as many contacts as the message's records may need, in one statement; `take` hands them out one
  by one (inserting one on its own once the reserve is empty), and `finish` deletes any left over;
- `adopt` starts tracking a contact that a resolution created: its values are kept here, complete, so recording more
  of them needs no look-up, and the new rows are inserted by `flush`, every tracked contact's in one statement;
- `finish` chooses the display values of every tracked contact from those values and writes them in one statement.

A merge reads and moves values in the database: before one, `release` writes what is pending for the contacts involved
and stops tracking them; they are read and written like any existing contact from then on.
"""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import bindparam, delete, insert
from sqlalchemy.orm import Session

from crm_sync.facts import Observed
from crm_sync.identity import create_contact
from crm_sync.profile import (
    PrimaryPolicy, ValueRow, apply_sightings, choose_display, insert_values, set_displays, update_sightings,
)
from crm_sync.schema import Contact
from ingest.schema import utcnow

CONTACTS = Contact.__table__
_CREATE_CONTACTS = insert(CONTACTS).returning(CONTACTS.c.id)
_DELETE_CONTACTS = delete(CONTACTS).where(CONTACTS.c.id.in_(bindparam("ids", expanding=True)))


class FreshContacts:
    def __init__(self, policy: PrimaryPolicy) -> None:
        self.policy = policy   # chooses the display values
        self._reserved: list[int] = []
        self._values: dict[int, dict[tuple[str, str], ValueRow]] = {}   # tracked contacts: every row they have
        self._pending: dict[tuple[int, str, str], ValueRow] = {}        # rows not inserted yet
        self._made: dict[int, set[int]] = {}                            # event id -> contacts taken ahead for it

    def reserve(self, session: Session, count: int) -> None:
        """Insert `count` contacts for `take` to hand out, in one statement."""
        if count > 0:
            now = utcnow()
            ids = session.execute(_CREATE_CONTACTS, [{"created_at": now, "updated_at": now}] * count).scalars()
            self._reserved.extend(sorted(ids, reverse=True))

    def take(self, session: Session) -> int:
        """A new contact: the lowest reserved one, or one inserted now."""
        if self._reserved:
            return self._reserved.pop()
        return create_contact(session)

    def made(self, event_id: int, contact_id: int) -> None:
        """A contact taken ahead of the event's resolution (see prepared.claim_new_people), for it to claim as new."""
        self._made.setdefault(event_id, set()).add(contact_id)

    def made_for_event(self, event_id: int) -> set[int]:
        """The contacts taken ahead for this event (once: its resolution takes them over)."""
        return self._made.pop(event_id, set())

    def adopt(self, contact_ids: Iterable[int]) -> None:
        """Contacts a resolution created: they have no values yet, and are tracked from here on."""
        for contact_id in contact_ids:
            self._values.setdefault(contact_id, {})

    def tracks(self, contact_id: int) -> bool:
        return contact_id in self._values

    def record(self, session: Session, contact_id: int, sightings: Iterable[tuple[int, Observed]], origin) -> None:
        """A tracked contact's values: new rows wait for `flush`; extending a row already flushed updates it now."""
        known = self._values[contact_id]
        new, extended = apply_sightings(known, sightings, origin)
        for row in new:
            self._pending[(contact_id, row.field, row.value_hash)] = row
        # A pending row was changed in place: its INSERT carries the change.
        update_sightings(session, contact_id, [row for row in extended
                                               if (contact_id, row.field, row.value_hash) not in self._pending])

    def flush(self, session: Session) -> None:
        """Insert every pending row, of every tracked contact, in one statement."""
        rows = [(contact_id, row) for (contact_id, _, _), row in self._pending.items()]
        self._pending.clear()
        insert_values(session, rows)

    def release(self, session: Session, contact_ids: Iterable[int]) -> None:
        """Before a merge of these contacts: their values and display values go to the database, and they are no
        longer tracked."""
        involved = [contact_id for contact_id in contact_ids if contact_id in self._values]
        if involved:
            self.flush(session)
            set_displays(session, {contact_id: choose_display(self._values.pop(contact_id).values(), self.policy)
                                   for contact_id in involved})

    def finish(self, session: Session) -> None:
        """Write what is pending: the values, every tracked contact's display values, and delete unused reserves."""
        self.flush(session)
        set_displays(session, {contact_id: choose_display(rows.values(), self.policy)
                               for contact_id, rows in self._values.items()})
        self._values.clear()
        if self._reserved:
            session.execute(_DELETE_CONTACTS, {"ids": self._reserved})
            self._reserved.clear()
