"""Property: any processing order of the same set of events gives the same final contacts and interactions.

Each example stores the same generated events in two emptied SQLite databases, then processes them in arrival order
in one and in a generated permutation in the other, through `process_event`.
Contacts are compared by what they are (their identities and values), not by their ids, which depend on the order.
"""
from __future__ import annotations

import json
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from crm_sync.model import Agent, ConversationState, Message, Page
from crm_sync.normalise import normalise_email, normalise_phone
from crm_sync.store import StoreOptions
from ingest.db import migrate
from ingest.runtime import Runtime
from ingest.schema import Base
from ingest.settings import settings_from_dict
from tests.contacts.conftest import SCRIPTED_SOURCES, StoreHarness, chat, lead, report, visitor

EMAILS = ["a@example.ru", "A@Example.RU", "b@example.ru", "c@example.ru", "not-an-email@"]
PHONES = ["+7 916 000-00-01", "8 (916) 000 00 01", "+79160000002", "call me"]
IDS = [("jivo.client_id", "1"), ("jivo.client_id", "2"), ("livechat.customer_id", "L1")]
NAMES = [None, "Ivan", "Ivan Petrov", "Maria"]
MESSAGES = [Message(author="visitor", text="Hi", external_id="m1"),
            Message(author="agent", text="Hello", external_id="m2"), Message(author="visitor", text="Thanks")]

people = st.builds(
    lambda name, emails, phones, ids, company: visitor(name, email=emails, phone=phones, ids=dict(ids),
                                                       company=company),
    st.sampled_from(NAMES), st.lists(st.sampled_from(EMAILS), max_size=2),
    st.lists(st.sampled_from(PHONES), max_size=2), st.lists(st.sampled_from(IDS), max_size=2, unique_by=lambda p: p[0]),
    st.sampled_from([None, "Acme", "Roga"]),
)
AGENTS = [None, Agent(id="7", name="Olga", email="olga@example.ru"), Agent(id="7"), Agent(id="7", name="Olga P"),
          Agent(id="8", name="Petr"), Agent(name="Anon")]
PAGES = [None, Page(url="https://a.example/", title="A"), Page(url="https://a.example/"),
         Page(url="https://b.example/")]
chats = st.builds(
    lambda conversation, state, subject, tags, messages, agent, page: chat(
        conversation, state, subject=subject, tags=tags, messages=messages, agent=agent, page=page),
    st.sampled_from(["jivo:c1", "jivo:c2"]), st.sampled_from([None, *ConversationState]),
    st.sampled_from([None, "Delivery", "Refund"]), st.lists(st.sampled_from(["vip", "sales"]), max_size=2),
    st.lists(st.sampled_from(MESSAGES), max_size=2), st.sampled_from(AGENTS), st.sampled_from(PAGES),
)
leads = st.builds(lambda number, subject: lead(number, subject=subject), st.sampled_from(["90", "91"]),
                  st.sampled_from([None, "Callback"]))
records = st.builds(report, people, st.one_of(st.none(), chats, leads))
events = st.lists(st.lists(records, min_size=1, max_size=2), min_size=2, max_size=6)


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory) -> Iterator[tuple[Runtime, Runtime]]:
    """Two databases kept for the whole module (emptied per example), so their engines' statement caches stay warm."""
    runtimes = []
    for name in ("arrival", "permuted"):
        url = f"sqlite:///{tmp_path_factory.mktemp(name)}/store.db"
        migrate(url)
        runtimes.append(Runtime(settings_from_dict({"database_url": url, "sources": SCRIPTED_SOURCES}, env={})))
    yield tuple(runtimes)
    for runtime in runtimes:
        runtime.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=events, data=st.data(), policy=st.sampled_from(["keep_first", "prefer_newest"]))
def test_any_processing_order_gives_the_same_contacts_and_interactions(two_stores, batch, data, policy):
    order = data.draw(st.permutations(range(len(batch))), label="processing order")
    arrival, permuted = two_stores
    in_arrival_order = _final_state(arrival, batch, range(len(batch)), policy)
    in_another_order = _final_state(permuted, batch, order, policy)
    assert in_another_order == in_arrival_order
    assert {contact[0] for contact in in_arrival_order[0]} == _expected_people(batch)


def _final_state(runtime: Runtime, batch, order, policy: str):
    with runtime.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    store = StoreHarness(runtime, StoreOptions(primary_policy=policy))
    event_ids = [store.deliver(*event_records) for event_records in batch]
    store.process(*(event_ids[i] for i in order))
    return _canonical(store)


def _canonical(store: StoreHarness):
    contacts, interactions = set(), set()
    for contact in store.contacts():
        values = frozenset((v.field, v.value, v.normalised, v.first_event_id, v.first_position, v.last_event_id,
                            v.last_position) for v in store.values(contact.id))
        contacts.add((contact.person_identities, contact.name, contact.primary_email, contact.primary_phone,
                      store.contact(contact.id).company, values))
        for row in contact.interactions:
            interactions.add((contact.person_identities, row.provider, row.natural_key, row.kind, row.state,
                              row.subject, row.event_id, row.occurred_at, json.dumps(row.details, sort_keys=True)))
    return frozenset(contacts), frozenset(interactions)


def _expected_people(batch) -> set[frozenset]:
    """The verified identities that must share a contact: linked by a record or by a common conversation or lead."""
    groups: list[set] = []
    for event_records in batch:
        for record in event_records:
            person = record.person
            keys = {("email", normalise_email(e).value) for e in person.emails if normalise_email(e).verified}
            keys |= {("phone", normalise_phone(p).value) for p in person.phones if normalise_phone(p).verified}
            keys |= {(i.kind, i.value) for i in person.identities}
            interaction = record.interaction
            anchor = {("~", interaction.conversation_id or interaction.external_id)} if interaction else set()
            if not (keys or anchor or person.name or person.company or person.emails or person.phones):
                continue  # nothing about anyone: no contact
            linked = [group for group in groups if group & (keys | anchor)]
            merged = set().union(keys, anchor, *linked)
            groups = [group for group in groups if group not in linked] + [merged]
    return {frozenset(key for key in group if key[0] != "~") for group in groups}
