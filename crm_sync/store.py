"""Applying an event's canonical records to the contact store, inside the event's processing transaction."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from crm_sync.facts import RecordFacts, facts_of
from crm_sync.fresh_contacts import FreshContacts
from crm_sync.identity import Origin, resolve_contacts
from crm_sync.interactions import RecordedInteraction, record_interaction
from crm_sync.model import CanonicalRecord
from crm_sync.normalise import MatchingRules, rules_from_settings
from crm_sync.profile import PrimaryPolicy, record_values, refresh_display, touch

if TYPE_CHECKING:
    from crm_sync.prepared import Prepared


@dataclass(frozen=True)
class StoreOptions:
    rules: MatchingRules = field(default_factory=MatchingRules)
    primary_policy: PrimaryPolicy = "keep_first"
    destinations: tuple[str, ...] = ()   # every interaction recorded is planned for delivery to each of these

    @classmethod
    def from_settings(cls, settings) -> "StoreOptions":
        return cls(rules=rules_from_settings(settings), primary_policy=settings.primary_policy,
                   destinations=tuple(sorted(settings.destinations)))


@dataclass
class Applied:
    """What an event produced: each record's contact and interaction, and the merges it caused."""

    contact_ids: list[int | None]
    interactions: list[RecordedInteraction | None]
    merged: dict[int, int]

    def summary(self) -> dict:
        """By id, as JSON: kept on the event for the admin API."""
        return {
            "contact_ids": self.contact_ids,
            "interaction_ids": [interaction.id if interaction else None for interaction in self.interactions],
            "merged": {str(loser): survivor for loser, survivor in sorted(self.merged.items())},
        }


def facts_for(origin: Origin, records: list[CanonicalRecord], options: StoreOptions) -> list[RecordFacts]:
    return [facts_of(record, index, origin.event_id, origin.source, options.rules)
            for index, record in enumerate(records)]


def apply_event(session: Session, origin: Origin, records: list[CanonicalRecord], options: StoreOptions,
                facts: list[RecordFacts] | None = None, prepared: Prepared | None = None) -> Applied:
    """Resolve each record's person, keep what it says, record its interaction; `facts`: the records' facts if
    computed already; `prepared`: what the transaction did ahead for all its events (crm_sync.prepared), whose
    new contacts' writes the caller finishes; without it, this event's own are finished here."""
    facts = facts if facts is not None else facts_for(origin, records, options)
    own = prepared is None
    fresh = FreshContacts(options.primary_policy) if prepared is None else prepared.fresh
    known = None if prepared is None else prepared.known
    first_reports = {} if prepared is None else prepared.first_reports
    resolution = resolve_contacts(session, [item.claims for item in facts], origin, known, fresh)
    fresh.adopt(resolution.created)
    changed = set(resolution.merged.values())
    position = 0
    for contact_id, item in zip(resolution.contact_ids, facts):
        sightings = list(enumerate(item.observed, start=position))
        position += len(sightings)
        if contact_id is None or not sightings:
            continue
        if fresh.tracks(contact_id):
            fresh.record(session, contact_id, sightings, origin)
        elif record_values(session, contact_id, sightings, origin):
            changed.add(contact_id)
    interactions: list[RecordedInteraction | None] = [None] * len(records)
    # In key order, like every other row this transaction locks.
    for index in sorted((i for i, item in enumerate(facts) if item.natural_key),
                        key=lambda i: (records[i].interaction.provider, facts[i].natural_key)):
        interactions[index] = first_reports.get((origin.event_id, index)) or record_interaction(
            session, resolution.contact_ids[index], records[index].interaction, facts[index].natural_key, origin,
            index, records[index].event_type)
    for contact_id in sorted(changed):
        if not fresh.tracks(contact_id) and not refresh_display(session, contact_id, options.primary_policy):
            touch(session, contact_id)
    if own:
        fresh.finish(session)
    return Applied(resolution.contact_ids, interactions, resolution.merged)
