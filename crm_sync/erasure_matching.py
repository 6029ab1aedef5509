"""Finding the person to erase: their contacts, and every stored request that names them in any written form.

One matcher decides whether a text names the person: each email and phone-like text in it is normalised as the
contact store normalises them and compared with the person's normal forms, where a phone without an extension also
matches that number with any extension (`+79161234567;ext=12`). It reads stored values that never parsed
(`8 916 123 45 67 (Иван)`) and raw requests alike.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable, Iterator
from urllib.parse import unquote_plus

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_sync.contacts import find_contact_ids, resolve_ids
from crm_sync.normalise import EMAIL, PHONE, MatchingRules, normalise_email, normalise_phone
from crm_sync.schema import ContactIdentity, ContactValue
from ingest.redaction import emails_in, phones_in
from ingest.schema import Event

EXTENSION = ";ext="
SCAN_BATCH = 500
# JSON writers that escape non-ASCII (PHP's json_encode) write "иван@…" as "\u0438\u0432\u0430\u043d@…". A run of
# escapes is decoded together so that a surrogate pair becomes its one character.
_UNICODE_ESCAPES = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")


class DifferentPeople(Exception):
    """The email and the phone given for one erasure belong to different contacts: erasing both could erase a
    stranger (a shared family phone, a typo), irreversibly."""

    def __init__(self, candidates: dict[str, list[int]]):
        super().__init__(
            "the email and the phone belong to different contacts ("
            + "; ".join(f"{kind}: {ids or 'none'}" for kind, ids in candidates.items())
            + "): nothing erased. If both people really are to be erased, erase each separately, by email and by phone")
        self.candidates = candidates


@dataclass(frozen=True)
class PersonForms:
    """The person's emails and phones in normal form."""

    exact: frozenset[str]
    # Phones given without an extension: the same number behind any extension is the same person's.
    any_extension_of: frozenset[str]

    @classmethod
    def of(cls, forms: Iterable[str]) -> PersonForms:
        forms = frozenset(forms)
        return cls(forms, frozenset(form for form in forms if form.startswith("+") and EXTENSION not in form))

    def __bool__(self) -> bool:
        return bool(self.exact)

    def named_in(self, text: str, rules: MatchingRules) -> bool:
        return any(form in self.exact or form.split(EXTENSION)[0] in self.any_extension_of
                   for form in normal_forms_in(text, rules))


def normal_forms_in(text: str, rules: MatchingRules) -> set[str]:
    """The normal form of every email and phone-like text in `text` that parses."""
    named = {normalise_email(item, rules).value for item in emails_in(text)} | \
            {normalise_phone(item, rules.default_region).value for item in phones_in(text)}
    return named - {None}


def given_forms(email: str | None, phone: str | None, rules: MatchingRules) -> PersonForms:
    given = [normalise_email(email, rules) if email else None,
             normalise_phone(phone, rules.default_region) if phone else None]
    return PersonForms.of(item.value for item in given if item and item.value)


def contacts_by_kind(session: Session, email: str | None, phone: str | None, rules: MatchingRules
                     ) -> dict[str, set[int]]:
    """{"email": surviving contacts, "phone": …} for what was given. Refuses (DifferentPeople) when both were given
    and they do not find exactly the same contacts (also when one finds nobody: the other may be a stranger's)."""
    found = {}
    if email:
        found[EMAIL] = find_contact_ids(session, email=email, rules=rules) | \
            _holders_of_unverified(session, EMAIL, given_forms(email, None, rules), rules)
    if phone:
        forms = given_forms(None, phone, rules)
        found[PHONE] = find_contact_ids(session, phone=phone, rules=rules) | _owners_of_extensions(session, forms) \
            | _holders_of_unverified(session, PHONE, forms, rules)
    if len(found) == 2 and found[EMAIL] != found[PHONE]:
        raise DifferentPeople({kind: sorted(ids) for kind, ids in found.items()})
    return found


def _owners_of_extensions(session: Session, forms: PersonForms) -> set[int]:
    """Contacts whose verified phone is one of these numbers with an extension (identities keep it as `;ext=`)."""
    owners: set[int] = set()
    for number in forms.any_extension_of:
        owners |= set(session.scalars(select(ContactIdentity.contact_id).where(
            ContactIdentity.kind == PHONE, ContactIdentity.value.startswith(number + EXTENSION, autoescape=True))))
    return set(resolve_ids(session, list(owners)).values())


def _holders_of_unverified(session: Session, field: str, forms: PersonForms, rules: MatchingRules) -> set[int]:
    """Contacts holding a value that never parsed whole but names the person once its extra text is ignored
    (`8 916 123 45 67 (Иван)`). Such values are no identity and have no index by their digits: a scan, in batches."""
    holders: set[int] = set()
    if not forms:
        return holders
    last_id = 0
    while True:
        rows = session.execute(select(ContactValue.id, ContactValue.contact_id, ContactValue.value).where(
            ContactValue.id > last_id, ContactValue.field == field, ContactValue.normalised.is_(None))
            .order_by(ContactValue.id).limit(SCAN_BATCH)).all()
        holders |= {row.contact_id for row in rows if forms.named_in(row.value, rules)}
        if len(rows) < SCAN_BATCH:
            return set(resolve_ids(session, list(holders)).values())
        last_id = rows[-1].id


def events_naming(session: Session, forms: PersonForms, needles: set[str], rules: MatchingRules) -> set[int]:
    """Every event whose raw request is kept and names the person: one of the written forms they were stored as
    (`needles`, exactly), or an email or phone that normalises to one of theirs. Every unpurged event is read, any
    status, in batches of SCAN_BATCH by id: erasure is rare and must be complete, and memory stays bounded."""
    found: set[int] = set()
    if not (forms or needles):
        return found
    for event_id, body, query in _unpurged_requests(session):
        if any(_names(text, forms, needles, rules) for text in readable_texts(body, query)):
            found.add(event_id)
    return found


def _unpurged_requests(session: Session) -> Iterator[tuple[int, bytes | None, str | None]]:
    last_id = 0
    while True:
        rows = session.execute(select(Event.id, Event.body, Event.query_string).where(
            Event.id > last_id, Event.purged_at.is_(None)).order_by(Event.id).limit(SCAN_BATCH)).all()
        yield from rows
        if len(rows) < SCAN_BATCH:
            return
        last_id = rows[-1].id


def _names(text: str, forms: PersonForms, needles: set[str], rules: MatchingRules) -> bool:
    return any(needle in text for needle in needles) or bool(forms) and forms.named_in(text, rules)


def readable_texts(body: bytes | None, query: str | None) -> list[str]:
    """A raw request as text, and as it reads with JSON's \\u escapes and URL encoding undone. The text as stored is
    kept too: URL decoding turns a JSON body's "+7 916…" into " 7 916…", which reads as another number."""
    raw = f"{(body or b'').decode('utf-8', 'replace')} {query or ''}"
    texts = [raw]
    if "\\u" in raw:
        texts.append(_UNICODE_ESCAPES.sub(_decoded_escapes, raw))
    if "%" in raw or "+" in raw:
        texts.append(unquote_plus(raw))
    return texts


def _decoded_escapes(match: re.Match[str]) -> str:
    return json.loads(f'"{match.group(0)}"')
