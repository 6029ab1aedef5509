"""Right to erasure: one person erased everywhere we store them, everyone else untouched, a tombstone kept."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from crm_sync.contacts import find_contact_ids
from crm_sync.erasure import forget_person
from crm_sync.erasure_matching import DifferentPeople
from crm_sync.crm_links import link_crm_record
from crm_sync.normalise import rules_from_settings
from crm_sync.pipeline import process_event
from crm_sync.schema import Contact, ContactIdentity, ContactValue, StoredInteraction
from ingest.db import transaction
from ingest.runtime import Runtime
from ingest.schema import Erasure, Event
from tests.conftest import payload
from tests.ops.conftest import post_generic, post_jivo

IVAN_TEXT = "Hi, I am Ivan Petrov, my flat is at Tverskaya 1"
TRACES_OF_IVAN = ("916", "123-45-67", "ivan", "Ivan", "Tverskaya")


def jivo_chat_with_ivan() -> dict:
    body = json.loads(payload("jivo/chat_finished.json"))
    body["visitor"].update(name="Ivan Petrov", email="ivan@example.com", phone="8 (916) 123-45-67")
    body["chat"]["messages"][0]["message"] = IVAN_TEXT
    return body


@dataclass
class People:
    ivan: int
    olga: int
    ivan_events: list[int]
    olga_event: int


@pytest.fixture
def people(ops_client, ops_runtime) -> People:
    post_jivo(ops_client, jivo_chat_with_ivan())                                                   # 1
    post_generic(ops_client, {"phone": "+7 916 123-45-67", "name": "Ivan P", "type": "lead",       # 2
                              "subject": "Flat for Ivan", "event_id": "L1", "kind": "lead"})
    post_generic(ops_client, {"email": "IVAN@example.com", "type": "note"}, source="generic-b")   # 3
    post_generic(ops_client, b'{"phone": "+79161234567", "name": "Ivan" ')                         # 4: dead
    post_generic(ops_client, {"email": "olga@example.com", "phone": "+7 903 111-22-33",             # 5
                              "name": "Olga", "subject": "Olga's order", "event_id": "L2", "kind": "lead"})
    for event_id in range(1, 6):
        process_event(ops_runtime.sessions, event_id)
    with ops_runtime.sessions() as session:
        ivan, = find_contact_ids(session, email="ivan@example.com")
        olga, = find_contact_ids(session, email="olga@example.com")
    return People(ivan, olga, [1, 2, 3, 4], 5)


def forget(runtime: Runtime, dry_run: bool = False, **person):
    return forget_person(runtime.sessions, rules_from_settings(runtime.settings), command="test", dry_run=dry_run,
                         **person)


def rows_of(runtime: Runtime, contact_id: int) -> dict:
    with runtime.sessions() as session:
        return {
            "identities": session.scalars(select(ContactIdentity).where(ContactIdentity.contact_id == contact_id)).all(),
            "values": session.scalars(select(ContactValue).where(ContactValue.contact_id == contact_id)).all(),
            "interactions": session.scalars(select(StoredInteraction)
                                            .where(StoredInteraction.contact_id == contact_id)).all(),
            "contact": session.get(Contact, contact_id),
        }


def events(runtime: Runtime, *event_ids: int) -> list[Event]:
    with runtime.sessions() as session:
        return [session.get(Event, event_id) for event_id in event_ids]


def test_the_person_is_found_by_a_differently_written_phone(ops_runtime, people):
    report = forget(ops_runtime, phone="89161234567")

    assert report.contact_ids == [people.ivan]
    assert report.event_ids == people.ivan_events


def test_their_contact_identities_and_values_are_erased(ops_runtime, people):
    forget(ops_runtime, phone="89161234567")

    rows = rows_of(ops_runtime, people.ivan)
    assert rows["identities"] == [] and rows["values"] == []
    contact = rows["contact"]
    assert (contact.name, contact.primary_email, contact.primary_phone) == (None, None, None)
    with ops_runtime.sessions() as session:
        assert find_contact_ids(session, email="ivan@example.com") == set()
        assert find_contact_ids(session, phone="+79161234567") == set()


def test_their_interactions_keep_no_transcript_or_personal_fields(ops_runtime, people):
    forget(ops_runtime, phone="89161234567")

    interactions = rows_of(ops_runtime, people.ivan)["interactions"]
    assert len(interactions) == 3
    for interaction in interactions:
        assert interaction.subject is None
        assert set(interaction.details) <= {"tags", "utm"}
        assert not any(trace in json.dumps(interaction.details) for trace in TRACES_OF_IVAN)


def test_every_event_that_mentioned_them_loses_its_raw_request_across_providers(ops_runtime, people):
    forget(ops_runtime, phone="89161234567")

    erased = events(ops_runtime, *people.ivan_events)
    assert {event.provider for event in erased} == {"jivo", "generic"}
    for event in erased:
        assert (event.body, event.headers, event.query_string) == (None, {}, "")
        assert event.purged_at is not None
        assert not any(trace in json.dumps(event.result or {}) for trace in TRACES_OF_IVAN)
    assert erased[3].status == "dead" and erased[3].error_class == "parse_error"


def test_other_people_are_untouched(ops_runtime, people):
    before = rows_of(ops_runtime, people.olga)

    forget(ops_runtime, phone="89161234567")

    after = rows_of(ops_runtime, people.olga)
    assert len(after["identities"]) == len(before["identities"]) > 0
    assert len(after["values"]) == len(before["values"]) > 0
    assert after["contact"].name == "Olga"
    assert [i.subject for i in after["interactions"]] == ["Olga's order"]
    olga_event, = events(ops_runtime, people.olga_event)
    assert b"olga@example.com" in olga_event.body and olga_event.purged_at is None


def test_a_tombstone_records_the_erasure_without_the_erased_values(ops_runtime, people):
    report = forget(ops_runtime, phone="89161234567")

    with ops_runtime.sessions() as session:
        tombstone = session.get(Erasure, report.erasure_id)
        # Every column but the time: its digits ("…:41.916…") can hold a trace like "916" by chance.
        text = json.dumps({column.name: getattr(tombstone, column.name) for column in Erasure.__table__.columns
                           if column.name != "erased_at"}, default=str)
    assert tombstone.command == "test" and tombstone.matched_by == ["phone"]
    assert tombstone.contact_ids == [people.ivan] and tombstone.event_ids == people.ivan_events
    assert tombstone.counts["events"] == 4 and tombstone.counts["interactions"] == 3
    assert not any(trace in text for trace in TRACES_OF_IVAN + ("example.com",))


def test_a_dry_run_reports_the_same_and_changes_nothing(ops_runtime, people):
    before = rows_of(ops_runtime, people.ivan)

    report = forget(ops_runtime, dry_run=True, email="Ivan@Example.com")

    assert report.dry_run and report.erasure_id is None
    assert report.contact_ids == [people.ivan] and report.event_ids == people.ivan_events
    assert len(rows_of(ops_runtime, people.ivan)["values"]) == len(before["values"])
    assert all(event.body for event in events(ops_runtime, *people.ivan_events))
    with ops_runtime.sessions() as session:
        assert session.scalars(select(Erasure)).all() == []


def test_crm_records_linked_to_the_person_are_listed_to_erase_in_each_crm(ops_runtime, people):
    with transaction(ops_runtime.sessions) as session:
        link_crm_record(session, people.ivan, "hubspot-main", "501", url="https://app.hubspot.com/contacts/1/501")

    report = forget(ops_runtime, email="ivan@example.com")

    assert report.crm_records == [{"destination": "hubspot-main", "record_id": "501",
                                   "url": "https://app.hubspot.com/contacts/1/501"}]


def test_an_event_not_yet_processed_ends_ignored_instead_of_recreating_the_person(ops_client, ops_runtime, people):
    post_generic(ops_client, {"phone": "+7 (916) 123 45 67", "name": "Ivan again"})  # 6, waiting in the queue

    forget(ops_runtime, phone="+79161234567")
    outcome = process_event(ops_runtime.sessions, 6)

    waiting, = events(ops_runtime, 6)
    assert (str(outcome), waiting.status, waiting.error_class, waiting.body) == ("skipped", "ignored", "erased", None)
    with ops_runtime.sessions() as session:
        assert find_contact_ids(session, phone="+79161234567") == set()


def test_nobody_found_erases_nothing(ops_runtime, people):
    report = forget(ops_runtime, email="nobody@example.com")

    assert not report.found and report.event_ids == []
    assert len(rows_of(ops_runtime, people.ivan)["values"]) > 0


def test_an_email_and_a_phone_of_different_people_are_refused_and_nothing_is_erased(ops_runtime, people):
    with pytest.raises(DifferentPeople) as refused:
        forget(ops_runtime, email="ivan@example.com", phone="+7 903 111-22-33")

    assert refused.value.candidates == {"email": [people.ivan], "phone": [people.olga]}
    assert "erase each separately" in str(refused.value)
    assert rows_of(ops_runtime, people.ivan)["values"] and rows_of(ops_runtime, people.olga)["values"]
    with ops_runtime.sessions() as session:
        assert session.scalars(select(Erasure)).all() == []


def test_an_email_that_finds_nobody_with_a_phone_that_finds_someone_is_refused(ops_runtime, people):
    with pytest.raises(DifferentPeople) as refused:
        forget(ops_runtime, dry_run=True, email="typo@example.com", phone="+7 903 111-22-33")

    assert refused.value.candidates == {"email": [], "phone": [people.olga]}


def test_an_email_and_a_phone_of_the_same_person_are_erased_together(ops_runtime, people):
    report = forget(ops_runtime, email="IVAN@example.com", phone="8 916 123 45 67")

    assert report.contact_ids == [people.ivan] and report.event_ids == people.ivan_events


def test_the_api_answers_409_with_the_candidates_for_an_email_and_a_phone_of_different_people(
        ops_client, ops_runtime, people, admin_headers):
    response = ops_client.post("/api/forget", json={"email": "ivan@example.com", "phone": "+7 903 111-22-33",
                                                    "dry_run": False}, headers=admin_headers)

    assert response.status_code == 409
    assert (response.json["error"], response.json["candidates"]) == (
        "different_people", {"email": [people.ivan], "phone": [people.olga]})
    assert rows_of(ops_runtime, people.olga)["values"]


def test_the_api_needs_the_admin_token_and_dry_runs_unless_told(ops_client, ops_runtime, people, admin_headers):
    assert ops_client.post("/api/forget", json={"phone": "89161234567"}).status_code == 401

    dry = ops_client.post("/api/forget", json={"phone": "89161234567"}, headers=admin_headers).json
    done = ops_client.post("/api/forget", json={"phone": "89161234567", "dry_run": False},
                           headers=admin_headers).json

    assert (dry["dry_run"], dry["found"], dry["erasure_id"]) == (True, True, None)
    assert (done["dry_run"], done["contact_ids"], done["event_ids"]) == (False, [people.ivan], people.ivan_events)
    assert done["erasure_id"] is not None
    assert ops_client.post("/api/forget", json={}, headers=admin_headers).json["error"] == "bad_request"
