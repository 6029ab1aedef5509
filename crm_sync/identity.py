"""Identity resolution: which contact each record is about, race-safe by construction.

Within the event's transaction, for all of its records at once:

1. claim every identity key that has no owner yet, in one global (kind, value) order, for a fresh contact
   (INSERT … ON CONFLICT DO NOTHING, then read the owners back: a concurrent claim simply wins, never duplicates);
2. lock the existing contacts the keys point to, in id order (SELECT … FOR UPDATE), following merges;
3. merge every group of contacts a record links: the lowest existing id survives, the losers keep `merged_into`.

All waits follow one order (identity keys sorted, then contacts by id), so two events cannot deadlock each other;
the one exception, a survivor that appears only after locking, is taken with NOWAIT and the transaction retried.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, delete, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from crm_sync.facts import Claim, Key
from crm_sync.profile import move_values
from crm_sync.schema import Contact, ContactIdentity, StoredInteraction
from ingest.db import dialect_of, insert_for
from ingest.schema import utcnow

if TYPE_CHECKING:
    from crm_sync.fresh_contacts import FreshContacts
    from crm_sync.known_owners import KnownOwners

IDENTITIES, CONTACTS = ContactIdentity.__table__, Contact.__table__
# Built once: every event runs these, and building a statement anew costs more CPU than running it.
_OWNERS = select(IDENTITIES.c.kind, IDENTITIES.c.value, IDENTITIES.c.scope, IDENTITIES.c.contact_id).where(
    tuple_(IDENTITIES.c.kind, IDENTITIES.c.value, IDENTITIES.c.scope).in_(bindparam("keys", expanding=True)))
_LOCK_CONTACTS = select(CONTACTS.c.id, CONTACTS.c.merged_into).where(
    CONTACTS.c.id.in_(bindparam("ids", expanding=True))).order_by(CONTACTS.c.id).with_for_update()
_LOCK_CONTACTS_NOWAIT = _LOCK_CONTACTS.with_for_update(nowait=True)
_CREATE_CONTACT = insert(CONTACTS).values(created_at=bindparam("now"), updated_at=bindparam("now")) \
    .returning(CONTACTS.c.id)


@cache
def claim_statement(dialect: str):
    """INSERT … ON CONFLICT DO NOTHING RETURNING the keys this transaction won (run with one row per key)."""
    columns = ("kind", "value", "scope", "role", "contact_id", "first_event_id", "source", "created_at")
    return (insert_for(dialect)(IDENTITIES).values({name: bindparam(name) for name in columns})
            .on_conflict_do_nothing(index_elements=["kind", "value", "scope"])
            .returning(IDENTITIES.c.kind, IDENTITIES.c.value, IDENTITIES.c.scope))


@dataclass(frozen=True)
class Origin:
    """The stored event a change comes from."""

    event_id: int
    source: str
    provider: str
    received_at: datetime


@dataclass
class Resolution:
    contact_ids: list[int | None]
    created: set[int] = field(default_factory=set)
    merged: dict[int, int] = field(default_factory=dict)  # loser -> survivor


def resolve_contacts(session: Session, claim_sets: list[tuple[Claim, ...]], origin: Origin,
                     known: KnownOwners | None = None, fresh: FreshContacts | None = None) -> Resolution:
    """The live, locked contact of each record (None for a record without claims); `known`: the owners this
    transaction has read or made already, kept current with this resolution; `fresh`: the contacts it creates."""
    resolution = Resolution([None] * len(claim_sets))
    keys = {claim.key for claims in claim_sets for claim in claims}
    if not keys:
        return resolution
    owners, new = _claim(session, claim_sets, keys, origin, known, fresh)
    if fresh is not None:
        new |= fresh.made_for_event(origin.event_id)
    live = lock_live_contacts(session, set(owners.values()) - new)
    contact_of = {key: owner if owner in new else live[owner] for key, owner in owners.items()}
    survivor_of: dict[int, int] = {}
    for members in _linked_groups(claim_sets, contact_of):
        survivor = _merge_group(session, members, new, origin, resolution, fresh)
        survivor_of.update(dict.fromkeys(members, survivor))
    resolution.contact_ids = [survivor_of[contact_of[claims[0].key]] if claims else None for claims in claim_sets]
    _drop_unused(session, new - set(contact_of.values()))
    if known is not None:
        known.settle(claim_sets, resolution.contact_ids)
    return resolution


def _claim(session: Session, claim_sets: list[tuple[Claim, ...]], keys: set[Key], origin: Origin,
           known: KnownOwners | None, fresh: FreshContacts | None) -> tuple[dict[Key, int], set[int]]:
    """Every key's owner after claiming the unowned ones, and the new contacts created for them."""
    owners = known.owners_of(session, keys) if known is not None else identity_owners(session, list(keys))
    new, claimed = _claim_missing(session, claim_sets, owners, origin, fresh)
    if claimed is None:  # a concurrent event won some of the keys: read who owns them now
        if known is not None:
            known.forget(keys)
        return identity_owners(session, list(keys)), new
    return {**owners, **claimed}, new


def _linked_groups(claim_sets: list[tuple[Claim, ...]], contact_of: dict[Key, int]) -> list[set[int]]:
    """Contacts that must become one: a record's keys pointing at several contacts link them all."""
    groups = _UnionFind()
    for claims in claim_sets:
        contacts = [contact_of[claim.key] for claim in claims]
        for other in contacts[1:]:
            groups.union(contacts[0], other)
    return groups.components(set(contact_of.values()))


def _merge_group(session: Session, members: set[int], new: set[int], origin: Origin, resolution: Resolution,
                 fresh: FreshContacts | None) -> int:
    """Merge the group into its survivor, the lowest existing contact (a new one only if none existed)."""
    survivor = min(members - new or members)
    for loser in sorted(members - {survivor}):
        if loser in new:
            _absorb_fresh(session, loser, survivor)
        else:
            if fresh is not None:
                fresh.release(session, (loser, survivor))
            merge_contacts(session, loser, survivor, origin.event_id)
            resolution.merged[loser] = survivor
    if survivor in new:
        resolution.created.add(survivor)
    return survivor


def identity_owners(session: Session, keys: list[Key]) -> dict[Key, int]:
    """The contact that owns each of these keys (exact scopes: no look-up by any source here)."""
    rows = session.execute(_OWNERS, {"keys": keys})
    return {(row.kind, row.value, row.scope): row.contact_id for row in rows}


def keys_condition(keys: list[Key]):
    """WHERE clause for identity keys, one IN list per (kind, scope); a None scope matches any source."""
    values_of: dict[tuple[str, str | None], list[str]] = {}
    for kind, value, scope in keys:
        values_of.setdefault((kind, scope), []).append(value)
    return or_(*(and_(ContactIdentity.kind == kind, ContactIdentity.value.in_(values),
                      *([] if scope is None else [ContactIdentity.scope == scope]))
                 for (kind, scope), values in values_of.items()))


def _claim_missing(session: Session, claim_sets: list[tuple[Claim, ...]], owners: dict, origin: Origin,
                   fresh: FreshContacts | None) -> tuple[set[int], dict[Key, int] | None]:
    """New contacts for the keys nobody owns yet (one per record that needs one): their ids, and the keys now
    theirs, or None for those if a concurrent claim won any of them."""
    pending: dict[Key, tuple[Claim, int]] = {}
    new: set[int] = set()
    for record_claims in claim_sets:
        missing = [claim for claim in record_claims if claim.key not in owners and claim.key not in pending]
        if not missing:
            continue
        contact_id = fresh.take(session) if fresh is not None else create_contact(session)
        new.add(contact_id)
        pending.update({claim.key: (claim, contact_id) for claim in missing})
    if not pending:
        return new, {}
    now = utcnow()
    rows = [{"kind": claim.kind, "value": claim.value, "scope": claim.scope, "role": claim.role,
             "contact_id": contact_id, "first_event_id": origin.event_id, "source": origin.source, "created_at": now}
            for claim, contact_id in (pending[key] for key in sorted(pending))]
    won = {(row.kind, row.value, row.scope) for row in session.execute(claim_statement(dialect_of(session)), rows)}
    if won != set(pending):
        return new, None
    return new, {key: contact_id for key, (_, contact_id) in pending.items()}


def create_contact(session: Session) -> int:
    now = utcnow()
    return session.execute(_CREATE_CONTACT, {"now": now}).scalar_one()


def lock_live_contacts(session: Session, contact_ids: set[int], held: frozenset[int] = frozenset()
                       ) -> dict[int, int]:
    """{contact: the live contact it is or was merged into}, every live one locked until the transaction ends.

    Locks are taken in id order; one that would break the order (a survivor found only after locking, or below a
    lock already `held`) is taken with NOWAIT, so a conflict aborts and retries instead of deadlocking.
    """
    resolved: dict[int, int | None] = {}
    pending = set(contact_ids)
    while pending:
        taken = set(resolved) | held
        out_of_order = bool(taken) and min(pending) < max(taken)
        rows = session.execute(_LOCK_CONTACTS_NOWAIT if out_of_order else _LOCK_CONTACTS,
                               {"ids": sorted(pending)}).all()
        if len(rows) != len(pending):
            raise LookupError(f"contacts {sorted(pending - {row.id for row in rows})} do not exist")
        resolved.update({row.id: row.merged_into for row in rows})
        pending = {row.merged_into for row in rows if row.merged_into is not None} - set(resolved)
    return {contact_id: _follow(resolved, contact_id) for contact_id in contact_ids}


def _follow(merged_into: dict[int, int | None], contact_id: int) -> int:
    while merged_into[contact_id] is not None:
        contact_id = merged_into[contact_id]
    return contact_id


def merge_contacts(session: Session, loser: int, survivor: int, event_id: int | None) -> None:
    """Move everything of `loser` to `survivor` (both locked) and leave `merged_into` behind so old ids resolve."""
    now = utcnow()
    session.execute(update(ContactIdentity).where(ContactIdentity.contact_id == loser).values(contact_id=survivor)
                    .execution_options(synchronize_session=False))
    session.execute(update(StoredInteraction).where(StoredInteraction.contact_id == loser)
                    .values(contact_id=survivor, updated_at=now).execution_options(synchronize_session=False))
    move_values(session, loser, survivor)
    session.execute(update(Contact).where(Contact.merged_into == loser).values(merged_into=survivor)
                    .execution_options(synchronize_session=False))
    session.execute(update(Contact).where(Contact.id == loser)
                    .values(merged_into=survivor, merged_at=now, merged_by_event_id=event_id, updated_at=now)
                    .execution_options(synchronize_session=False))


def _absorb_fresh(session: Session, fresh: int, survivor: int) -> None:
    """A contact created by this very transaction: nobody has seen it, so it goes without a trace."""
    session.execute(update(ContactIdentity).where(ContactIdentity.contact_id == fresh).values(contact_id=survivor)
                    .execution_options(synchronize_session=False))
    _drop_unused(session, {fresh})


def _drop_unused(session: Session, contact_ids: set[int]) -> None:
    if contact_ids:
        session.execute(delete(Contact).where(Contact.id.in_(contact_ids))
                        .execution_options(synchronize_session=False))


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, item: int) -> int:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)

    def components(self, items: set[int]) -> list[set[int]]:
        out: dict[int, set[int]] = {}
        for item in sorted(items):
            out.setdefault(self.find(item), set()).add(item)
        return list(out.values())
