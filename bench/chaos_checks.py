"""The chaos run's invariants, checked against the database and the fake CRMs' own records.

Each check returns a `Check` with a one-line account of what it counted, so the run prints why it passed as well as
why it failed.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bench.chaos_stream import Send
from crm_sync.destinations.content import phone_digits
from crm_sync.schema import Contact, ContactIdentity, Delivery, DeliveryStatus
from ingest.schema import Event, EventStatus
from tests.delivery.provider_events import Person

MARKER = re.compile(r"crm-ingest:([\w.-]+:i\d+:r\d+)")
FINISHED = {EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.DEAD}
NEEDS_REASON = {EventStatus.IGNORED, EventStatus.DEAD}


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def acknowledged_requests_are_stored(sessions: sessionmaker[Session], sends: list[Send],
                                     statuses: dict[int, int]) -> Check:
    """Every request answered 200 is a stored event, either the first of its kind or counted on the first.

    The stored deliveries may outnumber the 200s (a request stored whose response was lost, then sent again), never
    the reverse.
    """
    acked = [sends[number].request for number, status in statuses.items() if status == 200]
    query = select(Event.source, Event.method, Event.body, Event.query_string, Event.duplicate_count)
    with sessions() as session:
        stored = {(row.source, _payload(row.method, row.body, row.query_string)): 1 + row.duplicate_count
                  for row in session.execute(query)}
    missing = [request for request in acked
               if (_source_of(request.url), _payload(request.method, request.body, _query_of(request.url)))
               not in stored]
    deliveries = sum(stored.values())
    passed = bool(acked) and not missing and deliveries >= len(acked)
    return Check("every acknowledged request is stored", passed,
                 f"{len(acked)} responses 200 for {len({id(r) for r in acked})} distinct payloads; {len(stored)} "
                 f"events stored counting {deliveries} deliveries (first + duplicates); {len(missing)} missing")


def events_are_finished(sessions: sessionmaker[Session]) -> Check:
    """Every event processed, ignored or dead, and every ignored or dead one says why."""
    with sessions() as session:
        rows = session.execute(select(Event.status, Event.error_class, Event.error_message)).all()
    statuses = Counter(row.status for row in rows)
    unfinished = sum(n for status, n in statuses.items() if status not in FINISHED)
    unexplained = sum(1 for row in rows if row.status in NEEDS_REASON and not (row.error_class and row.error_message))
    return Check("every event is processed or dead with a reason", bool(rows) and not unfinished and not unexplained,
                 f"{dict(statuses)}; {unfinished} unfinished, {unexplained} ignored/dead without a reason")


def one_contact_per_person(sessions: sessionmaker[Session], everyone: Iterable[Person]) -> Check:
    """Each person's phone leads to exactly one live contact, no contact holds two people, no contact is spare."""
    by_phone = {person.e164: person for person in everyone}
    with sessions() as session:
        owners = dict(session.execute(select(ContactIdentity.value, ContactIdentity.contact_id).where(
            ContactIdentity.kind == "phone", ContactIdentity.value.in_(list(by_phone)))).all())
        merged = dict(session.execute(select(Contact.id, Contact.merged_into)).all())
        live = session.scalar(select(func.count()).select_from(Contact).where(Contact.merged_into.is_(None)))
    contacts_of: dict[int, set[str]] = defaultdict(set)
    for phone, contact_id in owners.items():
        contacts_of[merged.get(contact_id) or contact_id].add(phone)
    shared = {contact: phones for contact, phones in contacts_of.items() if len(phones) > 1}
    seen = len(owners)
    passed = seen > 0 and not shared and live == seen
    return Check("no person has two contacts", passed,
                 f"{seen} people seen, {live} live contacts, {len(shared)} contact(s) holding several people")


def one_record_per_person(crms: dict[str, list[str]], notes: dict[str, list[str]], everyone: Iterable[Person],
                          exactly: set[str] | None = None) -> Check:
    """No CRM has two person records for anyone, nor a record for nobody, nor one interaction written twice.

    `crms`: {CRM: the phone of each person record}; `notes`: {CRM: the text of each note}; with `exactly`, each of
    these people (E.164) must have exactly one record in every CRM.
    """
    by_digits = {phone_digits(person.e164)[-10:]: person.e164 for person in everyone}
    problems = []
    for crm, phones in crms.items():
        counts = Counter(by_digits.get(phone_digits(phone or "")[-10:], "nobody") for phone in phones)
        twice = {phone: n for phone, n in counts.items() if n > 1 and phone != "nobody"}
        if twice:
            problems.append(f"{crm}: {len(twice)} people with several records, e.g. {next(iter(twice.items()))}")
        if counts["nobody"]:
            problems.append(f"{crm}: {counts['nobody']} records that belong to nobody")
        if exactly is not None and (missing := exactly - set(counts)):
            problems.append(f"{crm}: {len(missing)} people without a record")
        keys = [MARKER.findall(text or "") for text in notes.get(crm, [])]
        if (unmarked := sum(1 for found in keys if not found)):
            problems.append(f"{crm}: {unmarked} notes without a delivery's key")
        written = Counter(key for found in keys for key in found)
        if (again := sum(1 for n in written.values() if n > 1)):
            problems.append(f"{crm}: {again} interaction(s) written twice")
    summary = "; ".join(f"{crm}: {len(phones)} records, {len(notes.get(crm, []))} notes"
                        for crm, phones in crms.items())
    return Check("no CRM has two records for a person", not problems and bool(crms),
                 "; ".join(problems) if problems else summary)


def everything_delivered(sessions: sessionmaker[Session]) -> Check:
    """After the replay: every event processed (or ignored) and every delivery succeeded."""
    with sessions() as session:
        events = Counter(dict(session.execute(select(Event.status, func.count()).group_by(Event.status)).all()))
        deliveries = Counter(dict(session.execute(select(Delivery.status, func.count())
                                                  .group_by(Delivery.status)).all()))
    passed = set(events) <= {EventStatus.PROCESSED, EventStatus.IGNORED} and bool(deliveries) \
        and set(deliveries) == {DeliveryStatus.SUCCEEDED}
    return Check("replaying the dead ones after the faults stop finishes them", passed,
                 f"events {dict(events)}; deliveries {dict(deliveries)}")


def _source_of(url: str) -> str:
    return urlsplit(url).path.split("/")[2]


def _query_of(url: str) -> str:
    return urlsplit(url).query


def _payload(method: str, body: bytes | None, query: str | None) -> tuple[str, bytes, str]:
    return method, bytes(body or b""), query or ""
