"""Right to erasure: remove one person from everywhere we store them, and keep a tombstone that says so.

The person is found as the contact store finds them (an email or phone in any written form; a phone also behind any
extension, and in stored values that never parsed), with every contact that was merged into theirs. An email and a
phone that find different contacts are refused (DifferentPeople). Nothing found: nothing erased, no tombstone.
Erased, in one transaction:

- the contacts' display values, every value ever seen and every identity (emails, phones, visitor ids, CRM links);
- their interactions' subject and details (transcript, agent, page, lead, geo, extras; tags and UTM are kept);
- the raw request (body, headers, query string) and canonical records of every event that mentioned them: events
  the store links to the person, and any event whose raw request names them, in any status (also dead and ignored
  ones that never reached the store): see crm_sync.erasure_matching;
- deliveries not yet made for their interactions stop (dead, `erased`), and CRM error texts are masked.

Ids, kinds, times and counters stay, so metrics and deduplication keep working. A tombstone (`erasures`) records the
ids and counts, never the erased values. Records already pushed to CRMs are *listed*, to be erased in each CRM.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from urllib.parse import quote, quote_plus

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from crm_sync.erasure_matching import PersonForms, contacts_by_kind, events_naming, given_forms
from crm_sync.identity import lock_live_contacts
from crm_sync.normalise import EMAIL, PHONE, MatchingRules, normalise_email, normalise_phone
from crm_sync.schema import (
    CRM_KIND_PREFIX, Contact, ContactIdentity, ContactValue, Delivery, DeliveryStatus, InteractionEvent,
    StoredInteraction,
)
from ingest.db import transaction
from ingest.redaction import redact
from ingest.retention import purge_rows
from ingest.schema import FINAL_STATUSES, Erasure, Event, EventStatus, utcnow

DETAILS_KEPT = ("tags", "utm")
MIN_NEEDLE_LENGTH = 6
ERASED = "erased"
ERASED_BEFORE_PROCESSING = "the raw request was erased (right to erasure) before it was processed"


@dataclass
class ErasureReport:
    matched_by: list[str]
    contact_ids: list[int] = field(default_factory=list)
    identities: int = 0
    values: int = 0
    interaction_ids: list[int] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)
    delivery_ids: list[int] = field(default_factory=list)
    crm_records: list[dict] = field(default_factory=list)
    in_flight_event_ids: list[int] = field(default_factory=list)
    erasure_id: int | None = None
    dry_run: bool = False

    @property
    def found(self) -> bool:
        # An event a worker holds counts: it names the person and is left alone, and the report must say so.
        return bool(self.contact_ids or self.event_ids or self.in_flight_event_ids)

    def as_dict(self) -> dict:
        return asdict(self)


def forget_person(sessions: sessionmaker[Session], rules: MatchingRules, *, email: str | None = None,
                  phone: str | None = None, command: str, dry_run: bool = False) -> ErasureReport:
    """Erase the person with this email and/or phone; a dry run finds and counts, then changes nothing.

    Raises DifferentPeople (nothing erased) when the email and the phone find different contacts."""
    if not (email or phone):
        raise ValueError("give an email or a phone")
    report = ErasureReport(matched_by=[kind for kind, value in ((EMAIL, email), (PHONE, phone)) if value],
                           dry_run=dry_run)
    try:
        with transaction(sessions) as session:
            _erase(session, report, rules, email, phone)
            if dry_run or not report.found:
                raise _RollBack()
            report.erasure_id = _tombstone(session, report, command)
    except _RollBack:
        pass
    return report


class _RollBack(Exception):
    """Leaves the transaction of a dry run, or of an erasure that found nothing, without committing anything (no
    tombstone claims an erasure that erased nothing)."""


def _erase(session: Session, report: ErasureReport, rules: MatchingRules, email: str | None,
           phone: str | None) -> None:
    live = set().union(*contacts_by_kind(session, email, phone, rules).values())
    contacts = _with_merged(session, sorted(set(lock_live_contacts(session, live).values()))) if live else []
    needles = _written_forms(session, contacts, _given_texts(email, phone, rules))
    report.contact_ids = contacts
    report.interaction_ids = _interactions_of(session, contacts)
    events = _events_linked(session, contacts, report.interaction_ids) | events_naming(
        session, _normal_forms(session, contacts, email, phone, rules), needles, rules)
    report.crm_records = _crm_records(session, contacts, report.interaction_ids)
    report.identities, report.values = _erase_contacts(session, contacts)
    _erase_interactions(session, report.interaction_ids)
    report.delivery_ids = _stop_deliveries(session, report.interaction_ids)
    report.event_ids, report.in_flight_event_ids = _erase_events(session, sorted(events))


def _with_merged(session: Session, live: list[int]) -> list[int]:
    merged = session.scalars(select(Contact.id).where(Contact.merged_into.in_(live)))
    return sorted(set(live) | set(merged))


def _interactions_of(session: Session, contacts: list[int]) -> list[int]:
    if not contacts:
        return []
    return sorted(session.scalars(select(StoredInteraction.id).where(StoredInteraction.contact_id.in_(contacts))))


def _given_texts(email: str | None, phone: str | None, rules: MatchingRules) -> list[str]:
    given = [normalise_email(email, rules) if email else None, normalise_phone(phone, rules.default_region)
             if phone else None]
    return [form for item in given if item for form in (item.original, item.value) if form]


def _written_forms(session: Session, contacts: list[int], given: list[str]) -> set[str]:
    """Every way the person's emails and phones were written, as they may appear in a raw request."""
    forms = {text.strip() for text in given}
    if contacts:
        for value, normalised in session.execute(select(ContactValue.value, ContactValue.normalised).where(
                ContactValue.contact_id.in_(contacts), ContactValue.field.in_([EMAIL, PHONE]))):
            forms |= {value, normalised or value}
        forms |= set(session.scalars(select(ContactIdentity.value).where(
            ContactIdentity.contact_id.in_(contacts), ContactIdentity.kind.in_([EMAIL, PHONE]))))
    needles = set()
    for form in forms:
        plain = form.split(";ext=")[0]
        needles |= {plain, quote_plus(plain), quote(plain, safe=""), plain.lstrip("+")}
    return {needle for needle in needles if len(needle) >= MIN_NEEDLE_LENGTH}


def _normal_forms(session: Session, contacts: list[int], email: str | None, phone: str | None,
                  rules: MatchingRules) -> PersonForms:
    """The given email and phone and every email and phone identity of the contacts, in normal form."""
    forms = set(given_forms(email, phone, rules).exact)
    if contacts:
        forms |= set(session.scalars(select(ContactIdentity.value).where(
            ContactIdentity.contact_id.in_(contacts), ContactIdentity.kind.in_([EMAIL, PHONE]))))
    return PersonForms.of(forms)


def _events_linked(session: Session, contacts: list[int], interactions: list[int]) -> set[int]:
    """Events the contact store connects to the person: sightings, identity claims, interaction reports."""
    if not contacts:
        return set()
    found = set(session.scalars(select(InteractionEvent.event_id).where(
        InteractionEvent.interaction_id.in_(interactions)))) if interactions else set()
    for first, last in session.execute(select(ContactValue.first_event_id, ContactValue.last_event_id)
                                       .where(ContactValue.contact_id.in_(contacts))):
        found |= {first, last}
    found |= set(session.scalars(select(ContactIdentity.first_event_id).where(
        ContactIdentity.contact_id.in_(contacts), ContactIdentity.first_event_id.is_not(None))))
    found |= set(session.scalars(select(Contact.merged_by_event_id).where(
        Contact.id.in_(contacts), Contact.merged_by_event_id.is_not(None))))
    return found


def _crm_records(session: Session, contacts: list[int], interactions: list[int]) -> list[dict]:
    records: dict[tuple[str, str], str | None] = {}
    if contacts:
        for kind, value, url in session.execute(select(ContactIdentity.kind, ContactIdentity.value,
                                                       ContactIdentity.url).where(
                ContactIdentity.contact_id.in_(contacts), ContactIdentity.kind.startswith(CRM_KIND_PREFIX))):
            records[(kind.removeprefix(CRM_KIND_PREFIX), value)] = url
    if interactions:
        for destination, record_id, url in session.execute(select(Delivery.destination, Delivery.crm_contact_id,
                                                                  Delivery.crm_url).where(
                Delivery.interaction_id.in_(interactions), Delivery.crm_contact_id.is_not(None))):
            records[(destination, record_id)] = records.get((destination, record_id)) or url
    return [{"destination": destination, "record_id": record_id, "url": url}
            for (destination, record_id), url in sorted(records.items())]


def _erase_contacts(session: Session, contacts: list[int]) -> tuple[int, int]:
    if not contacts:
        return 0, 0
    identities = session.execute(delete(ContactIdentity).where(ContactIdentity.contact_id.in_(contacts))).rowcount
    values = session.execute(delete(ContactValue).where(ContactValue.contact_id.in_(contacts))).rowcount
    session.execute(update(Contact).where(Contact.id.in_(contacts)).values(
        name=None, company=None, description=None, primary_email=None, primary_phone=None, updated_at=utcnow()))
    return identities, values


def _erase_interactions(session: Session, interactions: list[int]) -> None:
    for row in session.scalars(select(StoredInteraction).where(StoredInteraction.id.in_(interactions))):
        row.subject = None
        row.details = {key: value for key, value in (row.details or {}).items() if key in DETAILS_KEPT}
        row.field_sources, row.updated_at = {}, utcnow()
    session.flush()


def _stop_deliveries(session: Session, interactions: list[int]) -> list[int]:
    """Nothing more of the person goes to a CRM: deliveries still to make go dead; error texts are masked."""
    if not interactions:
        return []
    rows = list(session.scalars(select(Delivery).where(Delivery.interaction_id.in_(interactions))))
    for row in rows:
        if row.status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED):
            row.status, row.next_attempt_at, row.last_error_class = DeliveryStatus.DEAD, None, ERASED
            row.last_error = "the person was erased (right to erasure): nothing to deliver"
        elif row.last_error:
            row.last_error = redact(row.last_error)
    session.flush()
    return sorted(row.id for row in rows)


def _erase_events(session: Session, event_ids: list[int]) -> tuple[list[int], list[int]]:
    """Remove the raw requests; an event not yet processed ends `ignored` (erased) instead of being processed."""
    if not event_ids:
        return [], []
    rows = session.execute(select(Event.id, Event.status, Event.result, Event.error_message)
                           .where(Event.id.in_(event_ids))).all()
    in_flight = sorted(row.id for row in rows if row.status == EventStatus.PROCESSING)
    waiting = [row.id for row in rows if row.status == EventStatus.RECEIVED]
    if waiting:
        session.execute(update(Event).where(Event.id.in_(waiting), Event.status == EventStatus.RECEIVED).values(
            status=EventStatus.IGNORED, processed_at=utcnow(), error_class=ERASED))
    erased = [(row.id, row.result, row.error_message) for row in rows if row.status in FINAL_STATUSES]
    erased += [(event_id, None, ERASED_BEFORE_PROCESSING) for event_id in waiting]
    if erased:
        purge_rows(session, erased, finished_only=True)
    return sorted(event_id for event_id, _, _ in erased), in_flight


def _tombstone(session: Session, report: ErasureReport, command: str) -> int:
    tombstone = Erasure(
        erased_at=utcnow(), command=command[:200], matched_by=report.matched_by, contact_ids=report.contact_ids,
        interaction_ids=report.interaction_ids, event_ids=report.event_ids, delivery_ids=report.delivery_ids,
        counts={"contacts": len(report.contact_ids), "identities": report.identities, "values": report.values,
                "interactions": len(report.interaction_ids), "events": len(report.event_ids),
                "deliveries": len(report.delivery_ids)},
        crm_records=report.crm_records, in_flight_event_ids=report.in_flight_event_ids,
    )
    session.add(tombstone)
    session.flush()
    return tombstone.id
