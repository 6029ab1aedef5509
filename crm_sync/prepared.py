"""What the events of one task message share in their processing transaction, read and written ahead for all of
them at once: a statement each, where every event would otherwise run its own.

1. the owners of every identity key the events mention (crm_sync.known_owners);
2. a contact for each record that names a key nobody owns: the most new people the events can bring
   (crm_sync.fresh_contacts);
3. the keys of the records that are plainly new people, claimed for those contacts: nobody owns their keys and no
   other record of the message names them (claim_new_people);
4. the first report of each such person's interaction that no other record of the message names
   (interactions.record_first_reports).

Each event is then applied as it would be alone; where something was done ahead for it, it takes that over instead
of running the statement itself. What a concurrent transaction did meanwhile (a key or an interaction it stored
first) is left to that event's own resolution, which handles it as it always has.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy.orm import Session

from crm_sync.facts import Claim, RecordFacts
from crm_sync.fresh_contacts import FreshContacts
from crm_sync.identity import Origin, claim_statement
from crm_sync.interactions import FirstReport, RecordedInteraction, record_first_reports
from crm_sync.known_owners import KnownOwners
from crm_sync.model import CanonicalRecord
from crm_sync.store import StoreOptions
from ingest.db import dialect_of
from ingest.schema import utcnow


@dataclass(frozen=True)
class Parsed:
    """An event's canonical records, and what they say about people in the contact store's terms."""

    records: list[CanonicalRecord]
    facts: list[RecordFacts]


@dataclass(frozen=True)
class Prepared:
    known: KnownOwners
    fresh: FreshContacts
    first_reports: dict[tuple[int, int], RecordedInteraction]   # by (event id, record index)


@dataclass(frozen=True)
class _Record:
    origin: Origin
    index: int
    record: CanonicalRecord
    facts: RecordFacts


def prepare(session: Session, events: list[tuple[Origin, Parsed]], options: StoreOptions) -> Prepared:
    """The events' shared reads and writes (see the module's docstring), events in id order."""
    records = [_Record(origin, index, record, facts) for origin, parsed in events
               for index, (record, facts) in enumerate(zip(parsed.records, parsed.facts))]
    claiming = [record for record in records if record.facts.claims]
    keys = {claim.key for record in claiming for claim in record.facts.claims}
    known = KnownOwners()
    known.prefetch(session, keys)
    owned = known.owners_of(session, keys)
    fresh = FreshContacts(options.primary_policy)
    fresh.reserve(session, sum(1 for record in claiming
                               if any(claim.key not in owned for claim in record.facts.claims)))
    named = Counter(key for record in claiming for key in {claim.key for claim in record.facts.claims})
    new_people = [record for record in claiming
                  if all(claim.key not in owned and named[claim.key] == 1 for claim in record.facts.claims)]
    contacts = claim_new_people(session, [(record.origin, record.facts.claims) for record in new_people],
                                known, fresh)
    first_reports = record_first_reports(session, _first_reports(records, new_people, contacts))
    return Prepared(known, fresh, first_reports)


def claim_new_people(session: Session, people: list[tuple[Origin, tuple[Claim, ...]]], known: KnownOwners,
                     fresh: FreshContacts) -> list[int | None]:
    """Before a transaction's events are resolved: claim in one statement, each for a new contact, the keys of
    records that nobody owns and that no other record of the transaction names, which is what each record's own
    resolution would claim. The owners go to `known` and the contacts to `fresh` (for their event's resolution to
    treat as its own new ones); a key that a concurrent claim won is forgotten, so that resolution reads its owner
    and merges as usual. Returns each record's contact if it won all its keys (its resolution will end on it)."""
    if not people:
        return []
    now, rows, contacts = utcnow(), [], []
    for origin, claims in people:
        contact_id = fresh.take(session)
        fresh.made(origin.event_id, contact_id)
        contacts.append(contact_id)
        rows += [{"kind": claim.kind, "value": claim.value, "scope": claim.scope, "role": claim.role,
                  "contact_id": contact_id, "first_event_id": origin.event_id, "source": origin.source,
                  "created_at": now} for claim in claims]
    rows.sort(key=lambda row: (row["kind"], row["value"], row["scope"]))   # the global claim order
    won = {(row.kind, row.value, row.scope) for row in session.execute(claim_statement(dialect_of(session)), rows)}
    known.learn({(row["kind"], row["value"], row["scope"]): row["contact_id"] for row in rows
                 if (row["kind"], row["value"], row["scope"]) in won})
    known.forget({(row["kind"], row["value"], row["scope"]) for row in rows} - won)
    return [contact_id if all(claim.key in won for claim in claims) else None
            for contact_id, (_, claims) in zip(contacts, people)]


def _first_reports(records: list[_Record], new_people: list[_Record], contacts: list[int | None]
                   ) -> list[FirstReport]:
    """The interactions of the new people whose contact is settled, that no other record of the message names."""
    def key(record: _Record) -> tuple[str, str, str]:
        return record.origin.source, record.record.interaction.provider, record.facts.natural_key

    named = Counter(key(record) for record in records if record.facts.natural_key)
    return [FirstReport(contact_id, record.record.interaction, record.facts.natural_key, record.origin,
                        record.index, record.record.event_type)
            for record, contact_id in zip(new_people, contacts)
            if contact_id is not None and record.facts.natural_key and named[key(record)] == 1]
