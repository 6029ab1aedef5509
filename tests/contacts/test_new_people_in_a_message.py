"""New people in one task message: their contacts are inserted together, their values and display values written
together when the message's transaction ends (crm_sync.fresh_contacts), and nothing of it differs from processing
the events one by one. On SQLite and PostgreSQL, through the real event store and `process_events`."""
from __future__ import annotations

import pytest

from crm_sync.fresh_contacts import FreshContacts
from crm_sync.model import ConversationState
from crm_sync.identity import Origin
from crm_sync.known_owners import KnownOwners
from crm_sync.prepared import Prepared, claim_new_people
from crm_sync.schema import Contact
from crm_sync.store import apply_event, facts_for
from ingest.db import transaction
from ingest.schema import utcnow
from tests.contacts.conftest import chat, report, visitor
from tests.contacts.scripted import SCRIPTED
from tests.support.recording import statements_while

EMAIL = "ivan.petrov@example.ru"
PHONE = "+79161234567"


def statements_starting(store, action, *prefixes: str) -> list[str]:
    """The statements of `action` that start with any of the prefixes (whitespace and case aside)."""
    normal = [" ".join(statement.split()).upper() for statement in statements_while(store.runtime.engine, action)]
    return [statement for statement in normal if statement.startswith(tuple(p.upper() for p in prefixes))]


def new_people(store, count: int) -> list[int]:
    return [store.deliver(report(visitor(f"Person {n}", email=f"p{n}@example.com"), chat(f"jivo:{n}")))
            for n in range(count)]


def every_contact_row(store) -> list[Contact]:
    """Live, merged and any left-over contact rows alike."""
    with store.session() as session:
        return list(session.query(Contact).order_by(Contact.id))


def test_a_message_of_six_new_people_inserts_their_contacts_in_one_statement(store):
    events = new_people(store, 6)

    inserts = statements_starting(store, lambda: store.process(*events), "INSERT INTO contacts ")

    assert len(inserts) == 1
    assert len(store.contacts()) == 6


def test_a_message_of_six_new_people_inserts_their_values_in_one_statement(store):
    events = new_people(store, 6)

    inserts = statements_starting(store, lambda: store.process(*events), "INSERT INTO contact_values")

    assert len(inserts) == 1
    assert all(len(store.values(contact.id)) == 2 for contact in store.contacts())   # a name and an email each


def test_a_message_of_six_new_people_writes_their_display_values_in_one_statement(store):
    events = new_people(store, 6)

    updates = statements_starting(store, lambda: store.process(*events), "UPDATE contacts SET")

    assert len(updates) == 1
    assert sorted((c.name, c.primary_email) for c in store.contacts()) == [
        (f"Person {n}", f"p{n}@example.com") for n in range(6)]


def test_a_message_of_six_new_people_claims_their_identities_in_one_statement(store):
    events = new_people(store, 6)

    claims = statements_starting(store, lambda: store.process(*events), "INSERT INTO contact_identities")

    assert len(claims) == 1
    assert sorted(contact.person_identities for contact in store.contacts()) == sorted(
        frozenset({("email", f"p{n}@example.com")}) for n in range(6))


@pytest.mark.postgres
def test_a_message_of_six_new_people_inserts_their_interactions_in_one_statement(store):
    events = new_people(store, 6)

    inserts = statements_starting(store, lambda: store.process(*events), "INSERT INTO interactions")

    assert len(inserts) == 1
    assert sorted((contact.primary_email, [i.conversation_id for i in contact.interactions])
                  for contact in store.contacts()) == [(f"p{n}@example.com", [f"jivo:{n}"]) for n in range(6)]


def test_a_new_persons_chat_reported_twice_in_a_message_is_one_interaction_in_its_latest_state(store):
    opened = store.deliver(report(visitor(email=EMAIL), chat("jivo:1", ConversationState.OPEN)))
    closed = store.deliver(report(visitor(email=EMAIL), chat("jivo:1", ConversationState.CLOSED)))

    store.process(opened, closed)

    [interaction] = store.interactions()
    assert (interaction.state, interaction.event_id) == ("closed", opened)
    assert interaction.contact_id == store.only_contact().id


def test_each_event_keeps_the_interaction_it_reported_in_its_result(store):
    events = new_people(store, 3)

    store.process(*events)

    by_event = {interaction.event_id: interaction.id for interaction in store.interactions()}
    assert [store.event(event_id).result["interaction_ids"] for event_id in events] == [
        [by_event[event_id]] for event_id in events]


def test_a_new_person_whose_key_another_transaction_claimed_meanwhile_ends_on_that_contact(pg_store):
    store = pg_store
    records = [report(visitor(email=EMAIL, phone=PHONE), chat("jivo:2"))]
    event_id = store.deliver(*records)

    with transaction(store.runtime.sessions) as session:
        origin = Origin(event_id, "scripted", SCRIPTED, utcnow())
        facts = facts_for(origin, records, store.options)
        known, fresh = KnownOwners(), FreshContacts(store.options.primary_policy)
        known.prefetch(session, [claim.key for claim in facts[0].claims])   # nobody owns the email yet
        store.receive(report(visitor("Ivan", email=EMAIL), chat("jivo:1")))  # another transaction claims it
        claim_new_people(session, [(origin, facts[0].claims)], known, fresh)
        apply_event(session, origin, records, store.options, facts, Prepared(known, fresh, first_reports={}))
        fresh.finish(session)

    contact = store.only_contact()
    assert contact.person_identities == {("email", EMAIL), ("phone", PHONE)}
    assert [row.id for row in every_contact_row(store)] == [contact.id]


def test_a_new_person_named_by_two_events_of_a_message_leaves_no_spare_contact(store):
    events = [store.deliver(report(visitor(email=EMAIL), chat(f"jivo:{n}"))) for n in range(3)]

    store.process(*events)

    assert [contact.id for contact in every_contact_row(store)] == [store.only_contact().id]


def test_a_later_event_of_the_message_extends_the_value_an_earlier_one_recorded(store):
    first = store.deliver(report(visitor("Ivan", email=EMAIL), chat("jivo:1")))
    second = store.deliver(report(visitor("Ivan", email=EMAIL), chat("jivo:2")))

    store.process(first, second)

    rows = store.values(store.only_contact().id)
    assert [(row.field, row.first_event_id, row.last_event_id) for row in rows] == [
        ("email", first, second), ("name", first, second)]


def test_keep_first_shows_the_first_name_a_message_gave_a_new_person(store):
    events = [store.deliver(report(visitor(name, email=EMAIL), chat(f"jivo:{n}")))
              for n, name in enumerate(["Ivan", "Ivan Petrov"])]

    store.process(*events)

    assert store.only_contact().name == "Ivan"


def test_prefer_newest_shows_the_last_name_a_message_gave_a_new_person(make_store):
    store = make_store(primary_policy="prefer_newest")
    events = [store.deliver(report(visitor(name, email=EMAIL), chat(f"jivo:{n}")))
              for n, name in enumerate(["Ivan", "Ivan Petrov"])]

    store.process(*events)

    assert store.only_contact().name == "Ivan Petrov"


def test_a_new_person_merged_into_a_known_one_later_in_the_message_keeps_every_value(store):
    store.receive(report(visitor("Ivan", phone=PHONE), chat("jivo:1")))
    known_contact = store.only_contact().id
    new = store.deliver(report(visitor("Ivan Petrov", email=EMAIL), chat("jivo:2")))
    linking = store.deliver(report(visitor(email=EMAIL, phone="8 916 1234567"), chat("jivo:3")))

    store.process(new, linking)

    contact = store.only_contact()
    assert contact.id == known_contact
    assert (contact.name, contact.primary_email, contact.primary_phone) == ("Ivan", EMAIL, PHONE)
    assert sorted((row.field, row.value) for row in store.values(contact.id)) == [
        ("email", EMAIL), ("name", "Ivan"), ("name", "Ivan Petrov"), ("phone", PHONE), ("phone", "8 916 1234567")]


def test_the_merged_away_new_contact_still_shows_what_it_was_given(store):
    store.receive(report(visitor("Ivan", phone=PHONE), chat("jivo:1")))
    new = store.deliver(report(visitor("Ivan Petrov", email=EMAIL), chat("jivo:2")))
    linking = store.deliver(report(visitor(email=EMAIL, phone=PHONE), chat("jivo:3")))

    store.process(new, linking)

    merged = [row for row in every_contact_row(store) if row.merged_into is not None]
    assert [(row.name, row.primary_email) for row in merged] == [("Ivan Petrov", EMAIL)]
