"""The contact store's read side: contact cards for synchronous replies, interaction lists, contact search.

Every read is a handful of indexed queries (a Jivo reply has milliseconds of database time) and every contact id,
including one that was merged away, resolves to the surviving contact.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import NamedTuple

from sqlalchemy import and_, bindparam, func, or_, select, tuple_
from sqlalchemy.orm import Session

from crm_sync.facts import Key, anchor_value, person_facts
from crm_sync.identity import keys_condition
from crm_sync.model import Person, ProviderIdentity
from crm_sync.normalise import EMAIL, PHONE, MatchingRules
from crm_sync.profile import value_hash
from crm_sync.schema import CRM_KIND_PREFIX, Contact, ContactIdentity, ContactValue, StoredInteraction
from ingest.db import engine_of, execute_committed_rows

CARD_INTERACTIONS = 20
MAX_PAGE = 1000
# A card's look-up with more keys than this (a visitor with many emails and phones) builds its statement each time.
MAX_PREBUILT_KEYS = 16
_LIVE_ID = func.coalesce(Contact.merged_into, Contact.id)
_OWNERS_JOIN = ContactIdentity.__table__.join(Contact.__table__, Contact.id == ContactIdentity.contact_id)
_owners_statements: dict[int, object] = {}


@dataclass(frozen=True)
class InteractionSummary:
    id: int
    contact_id: int | None
    event_id: int                 # the first stored event that produced it (for Roistat: the order_id we replied)
    kind: str                     # InteractionKind value
    provider: str
    source: str
    conversation_id: str | None
    external_id: str | None       # e.g. the Roistat lead id
    state: str | None             # ConversationState value
    subject: str | None
    occurred_at: datetime | None  # these two stay last: _assemble reads them as the row's last two columns
    updated_at: datetime


@dataclass(frozen=True)
class ContactCard:
    contact_id: int               # the surviving contact (merged ids resolve to it)
    name: str | None
    emails: list[str]             # normalised, primary first
    phones: list[str]             # E.164 (with extension as ";ext=" if any), primary first
    interactions: list[InteractionSummary]   # newest first, at most 20
    crm_links: dict[str, str]     # destination name -> URL of the record in that CRM


def lookup_card(session: Session, person: Person, default_region: str,
                rules: MatchingRules | None = None, source: str | None = None) -> ContactCard | None:
    """The contact that any verified identity of `person` (email, phone, provider id) points to, or None.

    `rules` (from the settings' email_matching) make the look-up match exactly as processing does; without them the
    defaults apply. `source` (the asking source) scopes the provider's own ids as processing does; without it they
    match in any source. If the identities still point at two contacts (an event linking them is being processed),
    the lower id is the one the merge will keep. It reads committed rows only, whatever the session has written.
    """
    rules = replace(rules or MatchingRules(), default_region=default_region)
    claims, _ = person_facts(person, rules, source)
    keys = [claim.key for claim in claims]
    live = _live_owners_of_scoped_keys(session, keys) if _prebuilt_fits(keys) else live_contacts_of(session, keys)
    if not live:
        return None
    return _card_of(session, min(live))


def get_cards(session: Session, contact_ids: list[int]) -> dict[int, ContactCard]:
    """Cards by id (merged ids resolve to the surviving contact); unknown ids are left out."""
    survivors = resolve_ids(session, contact_ids)
    cards = _cards(session, sorted(set(survivors.values())))
    return {asked: cards[live] for asked, live in survivors.items() if live in cards}


def list_interactions(session: Session, *, provider: str, source: str | None = None, kind: str | None = None,
                      changed_since: datetime | None = None, offset: int = 0, limit: int = 100
                      ) -> tuple[int, list[InteractionSummary]]:
    """(total matching, one page ordered by id) — total is stable across pages while nothing new arrives."""
    conditions = [StoredInteraction.provider == provider]
    if source is not None:
        conditions.append(StoredInteraction.source == source)
    if kind is not None:
        conditions.append(StoredInteraction.kind == kind)
    if changed_since is not None:
        conditions.append(StoredInteraction.updated_at >= changed_since)
    total = session.scalar(select(func.count(StoredInteraction.id)).where(*conditions))
    rows = session.scalars(select(StoredInteraction).where(*conditions).order_by(StoredInteraction.id)
                           .offset(max(offset, 0)).limit(max(1, min(limit, MAX_PAGE))))
    return total, [summary_of(row) for row in rows]


def live_contacts_of(session: Session, keys: list[Key]) -> set[int]:
    """The surviving contacts that own any of these identity keys (one indexed query)."""
    if not keys:
        return set()
    return set(session.scalars(select(_LIVE_ID).select_from(_OWNERS_JOIN).where(keys_condition(keys))))


def _prebuilt_fits(keys: list[Key]) -> bool:
    return 0 < len(keys) <= MAX_PREBUILT_KEYS and all(scope is not None for _, _, scope in keys)


def _live_owners_of_scoped_keys(session: Session, keys: list[Key]) -> set[int]:
    """live_contacts_of for a card's look-up, which runs on every Jivo chat while Jivo waits for the reply: a
    statement prebuilt per number of keys, run on its own (as the reply's autocommit session would run it; it sees
    committed rows only) through ingest.db's one-statement path, on PostgreSQL a prepared statement on a kept
    connection. Through the session it cost 190 µs of CPU against 30 (no pool checkout, no ORM execution, no
    expanding IN list rendered per call)."""
    values = {}
    for index, (kind, value, scope) in enumerate(keys):
        values.update({f"kind_{index}": kind, f"value_{index}": value, f"scope_{index}": scope})
    rows = execute_committed_rows(engine_of(session), _owners_statement(len(keys)), values)
    return {row[0] for row in rows}


def _owners_statement(key_count: int):
    statement = _owners_statements.get(key_count)
    if statement is None:
        table = ContactIdentity.__table__
        wanted = [tuple_(*(bindparam(f"{column}_{index}", type_=table.c[column].type)
                           for column in ("kind", "value", "scope"))) for index in range(key_count)]
        statement = _owners_statements.setdefault(key_count, select(_LIVE_ID).select_from(_OWNERS_JOIN).where(
            tuple_(table.c.kind, table.c.value, table.c.scope).in_(wanted)))
    return statement


def resolve_ids(session: Session, contact_ids: list[int]) -> dict[int, int]:
    """{asked id: surviving id} for the ids that exist."""
    if not contact_ids:
        return {}
    rows = session.execute(select(Contact.id, Contact.merged_into).where(Contact.id.in_(set(contact_ids))))
    return {row.id: row.merged_into or row.id for row in rows}


def find_contact_ids(session: Session, *, email: str | None = None, phone: str | None = None,
                     identity: tuple[str, str] | None = None, rules: MatchingRules = MatchingRules()) -> set[int]:
    """Surviving contacts with this email, phone or identity (in any source): by normal form, or exactly as written.

    `identity` (kind, value) is normalised as processing normalises what it stores: the kind trimmed and lowercased,
    an email or phone kind as `email` or `phone`, a provider's id trimmed, an interaction's id as its anchor."""
    kind, value = (identity[0].strip().lower(), identity[1].strip()) if identity else ("", "")
    emails = [text for text in (email, value if kind == EMAIL else None) if text and text.strip()]
    phones = [text for text in (phone, value if kind == PHONE else None) if text and text.strip()]
    ids = [ProviderIdentity(kind=kind, value=value)] if kind not in ("", EMAIL, PHONE) else []
    keys = [claim.key for claim in person_facts(Person(emails=emails, phones=phones, identities=ids), rules, None)[0]]
    if ":" in kind:   # an interaction's anchor (`jivo:conversation`): a long id is stored by its digest
        keys.append((kind, anchor_value(value), None))
    found = live_contacts_of(session, keys)
    written = [(EMAIL, text.strip()) for text in emails] + [(PHONE, text.strip()) for text in phones]
    if written:
        as_written = or_(*(and_(ContactValue.field == field, ContactValue.value_hash == value_hash(text))
                           for field, text in written))
        owners = session.scalars(select(ContactValue.contact_id).where(as_written))
        found |= set(resolve_ids(session, list(set(owners))).values())
    return found


def split_identity(session: Session, text: str) -> tuple[str, str]:
    """`<kind>:<value>` as asked, into (kind, value). A kind may hold ':' itself (`jivo:conversation`, and the value
    `jivo:1:2` too): the kind is the longest prefix ending before a ':' that the store knows, else the first part."""
    parts = text.split(":")
    for end in range(len(parts) - 1, 1, -1):   # longest first; the first part is the answer when none is known
        kind = ":".join(parts[:end])
        if session.scalar(select(ContactIdentity.id).where(ContactIdentity.kind == kind.strip().lower()).limit(1)):
            return kind, ":".join(parts[end:])
    return parts[0], ":".join(parts[1:])


def summary_of(row: StoredInteraction) -> InteractionSummary:
    return InteractionSummary(
        id=row.id, contact_id=row.contact_id, event_id=row.event_id, kind=row.kind, provider=row.provider,
        source=row.source, conversation_id=row.conversation_id, external_id=row.external_id, state=row.state,
        subject=row.subject, occurred_at=row.occurred_at, updated_at=row.updated_at,
    )


_NEWEST_FIRST = (func.coalesce(StoredInteraction.occurred_at, StoredInteraction.created_at).desc(),
                 StoredInteraction.id.desc())


def _newest_of(contact_ids, per_contact, *columns):
    """SELECT `columns` of the newest `per_contact` interactions of each contact, newest first."""
    ranked = select(StoredInteraction.id, func.row_number().over(
        partition_by=StoredInteraction.contact_id, order_by=_NEWEST_FIRST).label("rank")
    ).where(StoredInteraction.contact_id.in_(contact_ids)).subquery()
    return select(*columns).join(ranked, ranked.c.id == StoredInteraction.id) \
        .where(ranked.c.rank <= per_contact).order_by(*_NEWEST_FIRST)


def recent_interactions(session: Session, contact_ids: list[int], per_contact: int) -> dict[int, list]:
    """The newest `per_contact` interactions of each contact, in one query."""
    rows = session.scalars(_newest_of(contact_ids, per_contact, StoredInteraction))
    out: dict[int, list] = {contact_id: [] for contact_id in contact_ids}
    for row in rows:
        out[row.contact_id].append(row)
    return out


def ordered_identities(contact: Contact, identities: list[ContactIdentity], kind: str) -> list[str]:
    primary = contact.primary_email if kind == EMAIL else contact.primary_phone
    values = [identity.value for identity in sorted(identities, key=lambda i: i.id) if identity.kind == kind]
    return sorted(values, key=lambda value: value != primary)


def crm_links(identities: list[ContactIdentity]) -> dict[str, str]:
    return {identity.kind.removeprefix(CRM_KIND_PREFIX): identity.url
            for identity in sorted(identities, key=lambda i: i.id)
            if identity.kind.startswith(CRM_KIND_PREFIX) and identity.url}


def _cards(session: Session, live_ids: list[int]) -> dict[int, ContactCard]:
    """Cards of surviving contacts: three prebuilt statements of the columns a card shows. (Loading ORM objects,
    interactions with their whole transcripts, had cost a known visitor's look-up 1.7 ms of CPU.)"""
    if not live_ids:
        return {}
    ids = {"ids": live_ids}
    return _assemble(*(session.execute(statement, ids) for statement in _CARDS))


def _card_of(session: Session, live_id: int) -> ContactCard | None:
    """One card, as a Jivo reply asks for it on every chat of a known visitor: the same statements for one id, run
    through ingest.db's one-statement path, on PostgreSQL prepared on a kept connection (the whole look-up of a known
    visitor: 0.85 ms of CPU through the session, 0.23 ms this way). Each sees committed rows only, as the reply's
    autocommit session did."""
    engine, values = engine_of(session), {"contact_id": live_id}
    return _assemble(*(execute_committed_rows(engine, statement, values) for statement in _ONE_CARD)).get(live_id)


class _CardContact(NamedTuple):
    id: int
    name: str | None
    primary_email: str | None
    primary_phone: str | None


class _CardIdentity(NamedTuple):
    id: int
    contact_id: int
    kind: str
    value: str
    url: str | None


def _assemble(contact_rows, identity_rows, interaction_rows) -> dict[int, ContactCard]:
    """Cards from the rows of the card statements (tuples in their columns' order: either path gives those)."""
    contacts = {contact.id: contact for contact in (_CardContact(*row) for row in contact_rows)}
    identities: dict[int, list[_CardIdentity]] = {contact_id: [] for contact_id in contacts}
    for identity in (_CardIdentity(*row) for row in identity_rows):
        identities[identity.contact_id].append(identity)
    interactions: dict[int, list[InteractionSummary]] = {contact_id: [] for contact_id in contacts}
    for *fields, occurred_at, updated_at in interaction_rows:
        summary = InteractionSummary(*fields, _utc(occurred_at), _utc(updated_at))
        interactions[summary.contact_id].append(summary)
    return {
        contact_id: ContactCard(
            contact_id=contact_id, name=contact.name,
            emails=ordered_identities(contact, identities[contact_id], EMAIL),
            phones=ordered_identities(contact, identities[contact_id], PHONE),
            interactions=interactions[contact_id],
            crm_links=crm_links(identities[contact_id]),
        )
        for contact_id, contact in contacts.items()
    }


def _utc(moment: datetime | None) -> datetime | None:
    """As the UTC columns read through SQLAlchemy (the driver's path hands PostgreSQL's session time zone)."""
    return moment if moment is None else moment.astimezone(timezone.utc)


def _card_statements(ids):
    """The contacts, identities and newest interactions of `ids` (an IN list, or one contact id), in the columns'
    order _assemble reads."""
    return (
        select(Contact.id, Contact.name, Contact.primary_email, Contact.primary_phone).where(Contact.id.in_(ids)),
        select(ContactIdentity.id, ContactIdentity.contact_id, ContactIdentity.kind, ContactIdentity.value,
               ContactIdentity.url).where(ContactIdentity.contact_id.in_(ids)),
        _newest_of(ids, CARD_INTERACTIONS,
                   *(StoredInteraction.__table__.c[name] for name in InteractionSummary.__dataclass_fields__)),
    )


_CARDS = _card_statements(bindparam("ids", expanding=True))
_ONE_CARD = _card_statements([bindparam("contact_id")])
