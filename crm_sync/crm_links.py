"""A contact's records in the CRMs: each is a `crm.<destination>` identity of the contact, as global as an email.

A CRM record is one person. A delivery that finds a record already attached to another contact has learned that the
two contacts are one person, and merges them (crm_sync.identity's merge, under its lock order).
"""
from __future__ import annotations

from functools import cache

from sqlalchemy import func
from sqlalchemy.orm import Session

from crm_sync.facts import GLOBAL
from crm_sync.identity import IDENTITIES, lock_live_contacts, merge_contacts
from crm_sync.profile import PrimaryPolicy, refresh_display
from crm_sync.schema import CRM_KIND_PREFIX, IdentityRole
from ingest.db import dialect_of, insert_for
from ingest.schema import utcnow


def link_crm_record(session: Session, contact_id: int, destination: str, record_id: str, url: str | None = None,
                    event_id: int | None = None, primary_policy: PrimaryPolicy = "keep_first") -> int:
    """Attach a CRM record (`crm.<destination>` identity) to a contact; returns the contact it ends up on.

    A CRM record is one person: if it is already attached to another contact, the two contacts are merged.
    """
    live = lock_live_contacts(session, {contact_id})[contact_id]
    return attach_crm_record(session, live, destination, record_id, url, event_id, primary_policy)[0]


def attach_crm_record(session: Session, live: int, destination: str, record_id: str, url: str | None = None,
                      event_id: int | None = None, primary_policy: PrimaryPolicy = "keep_first",
                      held: frozenset[int] = frozenset()) -> tuple[int, bool]:
    """`link_crm_record` for a live contact this transaction has locked already (with `held`, the others it has
    locked); the contact the record ends up on, and whether that took a merge."""
    owner = session.execute(_link_statement(dialect_of(session)), {
        "kind": f"{CRM_KIND_PREFIX}{destination}", "value": record_id, "scope": GLOBAL, "contact_id": live,
        "role": IdentityRole.PERSON, "first_event_id": event_id, "source": destination, "url": url,
        "created_at": utcnow()}).scalar_one()
    if owner == live:
        return live, False
    owner = lock_live_contacts(session, {owner}, held=held | {live})[owner]
    survivor = min(live, owner)
    for loser in {live, owner} - {survivor}:
        merge_contacts(session, loser, survivor, event_id)
        refresh_display(session, survivor, primary_policy)
    return survivor, survivor != live or owner != live


def link_crm_records(session: Session, destination: str, links: list[tuple[int, str, str | None]]
                     ) -> dict[str, int]:
    """Upsert many CRM records' identities in one statement, each for a live contact this transaction has locked;
    {record: the contact that owns it}. Records must be distinct; one already another contact's is left to
    `attach_crm_record`, which merges."""
    if not links:
        return {}
    now, kind = utcnow(), f"{CRM_KIND_PREFIX}{destination}"
    rows = session.execute(_link_statement(dialect_of(session)).returning(IDENTITIES.c.value), [
        {"kind": kind, "value": record_id, "scope": GLOBAL, "contact_id": live, "role": IdentityRole.PERSON,
         "first_event_id": None, "source": destination, "url": url, "created_at": now}
        for live, record_id, url in links])
    return {row.value: row.contact_id for row in rows}


@cache
def _link_statement(dialect: str):
    """The CRM record's identity, inserted or (its page's URL) updated; RETURNING the contact that owns it."""
    insert = insert_for(dialect)(IDENTITIES)
    return insert.on_conflict_do_update(
        index_elements=["kind", "value", "scope"],
        set_={"url": func.coalesce(insert.excluded.url, IDENTITIES.c.url)},
    ).returning(IDENTITIES.c.contact_id)
