"""One person, one contact: matching by verified identities, merging, the primary policy, and keeping everything.

Every test runs on SQLite and PostgreSQL (the `database_url` parametrisation) through the real event store and
`process_event`.
"""
from __future__ import annotations

from crm_sync.contacts import get_cards, lookup_card
from crm_sync.crm_links import link_crm_record
from crm_sync.model import ConversationState
from ingest.db import transaction
from tests.contacts.conftest import chat, lead, report, visitor

IVAN_EMAIL = "ivan.petrov@example.ru"
IVAN_PHONE = "+79161234567"


def test_events_sharing_a_verified_email_end_on_one_contact(store):
    store.receive(report(visitor("Ivan", email="Ivan.Petrov@Example.ru"), chat("jivo:1")))
    store.receive(report(visitor(email=IVAN_EMAIL), lead("90")))
    contact = store.only_contact()
    assert ("email", IVAN_EMAIL) in contact.identities
    assert len(contact.interactions) == 2


def test_a_phone_written_differently_links_to_the_same_contact(store):
    store.receive(report(visitor(phone="+7 916 123-45-67"), chat("jivo:1")))
    store.receive(report(visitor(phone="8 (916) 123 45 67"), lead("90")))
    assert store.only_contact().person_identities == {("phone", IVAN_PHONE)}


def test_a_phone_typed_with_letters_links_no_stranger_who_owns_the_number_they_spell(store):
    store.receive(report(visitor("Boris", email="boris@example.com", phone="+7 916 165-62-63"), chat("jivo:1")))
    store.receive(report(visitor("Anna", email="anna@example.com", phone="8 (916) 1O5-O2-O3"), chat("jivo:2")))
    assert [contact.name for contact in store.contacts()] == ["Boris", "Anna"]


def test_people_who_typed_a_form_masks_filler_number_stay_apart(store):
    store.receive(report(visitor("Anna", email="anna@example.com", phone="+7 (999) 999-99-99"), chat("jivo:1")))
    store.receive(report(visitor("Boris", email="boris@example.com", phone="+7 (999) 999-99-99"), chat("jivo:2")))
    assert [contact.name for contact in store.contacts()] == ["Anna", "Boris"]


def test_a_provider_visitor_id_links_events_of_that_provider(store):
    store.receive(report(visitor(ids={"jivo.client_id": "1217"}), chat("jivo:1")))
    store.receive(report(visitor(email=IVAN_EMAIL, ids={"jivo.client_id": "1217"}), chat("jivo:2")))
    assert store.only_contact().person_identities == {("jivo.client_id", "1217"), ("email", IVAN_EMAIL)}


def test_the_same_visitor_id_from_two_provider_accounts_is_two_people(store):
    store.receive(report(visitor("Anna", ids={"jivo.client_id": "1217"}), chat("jivo:1")), source="scripted")
    store.receive(report(visitor("Boris", ids={"jivo.client_id": "1217"}), chat("jivo:1")), source="scripted-other")
    contacts = store.contacts()
    assert [contact.name for contact in contacts] == ["Anna", "Boris"]
    assert [len(contact.interactions) for contact in contacts] == [1, 1]


def test_a_card_looked_up_for_a_source_matches_provider_ids_of_that_source_only(store):
    store.receive(report(visitor("Anna", ids={"jivo.client_id": "1217"})), source="scripted")
    store.receive(report(visitor("Boris", ids={"jivo.client_id": "1217"})), source="scripted-other")
    with store.session() as session:
        card = lookup_card(session, visitor(ids={"jivo.client_id": "1217"}), "RU", source="scripted-other")
    assert card.name == "Boris"


def test_an_unverified_phone_or_email_never_links_two_contacts(store):
    store.receive(report(visitor("Anna", phone="call me", email="anna@"), lead("1")))
    store.receive(report(visitor("Boris", phone="call me", email="anna@"), lead("2")))
    contacts = store.contacts()
    assert [contact.name for contact in contacts] == ["Anna", "Boris"]
    for contact in contacts:
        assert contact.person_identities == set()
        assert {(v.field, v.value, v.normalised) for v in store.values(contact.id)} >= {
            ("phone", "call me", None), ("email", "anna@", None)}


def test_an_event_linking_two_contacts_merges_them_into_the_lower_id(store):
    store.receive(report(visitor("Ivan", email=IVAN_EMAIL), chat("jivo:1")))
    store.receive(report(visitor("Ivan P.", phone=IVAN_PHONE), lead("90")))
    assert len(store.contacts()) == 2
    linking = store.receive(report(visitor(email=IVAN_EMAIL, phone=IVAN_PHONE),
                                   chat("livechat:7", provider="livechat")))
    contact = store.only_contact()
    assert contact.id == 1
    assert contact.person_identities == {("email", IVAN_EMAIL), ("phone", IVAN_PHONE)}
    assert len(contact.interactions) == 3
    loser = store.contact(2)
    assert (loser.merged_into, loser.merged_by_event_id) == (1, linking)
    assert store.event(linking).result["merged"] == {"2": 1}


def test_a_merged_contact_id_still_resolves_to_the_survivor(store):
    store.receive(report(visitor(email=IVAN_EMAIL), chat("jivo:1")))
    store.receive(report(visitor(phone=IVAN_PHONE), chat("jivo:2")))
    store.receive(report(visitor(email=IVAN_EMAIL, phone=IVAN_PHONE)))
    with store.session() as session:
        cards = get_cards(session, [1, 2])
    assert cards[1] == cards[2]
    assert cards[2].contact_id == 1 and cards[2].emails == [IVAN_EMAIL] and cards[2].phones == [IVAN_PHONE]


def test_a_chain_of_merges_leaves_every_old_id_pointing_at_the_final_survivor(store):
    store.receive(report(visitor(email="a@example.ru")))
    store.receive(report(visitor(email="b@example.ru")))
    store.receive(report(visitor(email="c@example.ru")))
    store.receive(report(visitor(email=["b@example.ru", "c@example.ru"])))
    assert store.contact(3).merged_into == 2
    store.receive(report(visitor(email=["a@example.ru", "b@example.ru"])))
    assert (store.contact(2).merged_into, store.contact(3).merged_into) == (1, 1)
    assert store.only_contact().person_identities == {("email", f"{x}@example.ru") for x in "abc"}


def test_records_of_one_event_about_one_conversation_are_one_contact(store):
    store.receive(report(visitor(email=IVAN_EMAIL), chat("jivo:1")),
                  report(visitor(phone=IVAN_PHONE), chat("jivo:1", ConversationState.CLOSED)))
    assert store.only_contact().person_identities == {("email", IVAN_EMAIL), ("phone", IVAN_PHONE)}


def test_a_value_two_records_of_a_new_persons_first_event_repeat_spans_both_sightings(store):
    event_id = store.receive(report(visitor("Ivan", email=IVAN_EMAIL), chat("jivo:1")),
                             report(visitor("Ivan", email=IVAN_EMAIL), chat("jivo:1", ConversationState.CLOSED)))
    names = [(v.first_event_id, v.first_position, v.last_event_id, v.last_position)
             for v in store.values(1) if v.field == "name"]
    assert names == [(event_id, 0, event_id, 2)]
    assert store.only_contact().name == "Ivan"


def test_records_of_one_event_about_two_people_are_two_contacts(store):
    store.receive(report(visitor(email="anna@example.ru"), lead("1")), report(visitor(email="boris@example.ru"),
                                                                             lead("2")))
    assert len(store.contacts()) == 2


def test_a_conversation_links_an_anonymous_visitor_to_the_person_who_later_gives_an_email(store):
    store.receive(report(visitor(), chat("rocketchat:room1", provider="rocketchat", kind="message")))
    store.receive(report(visitor(email=IVAN_EMAIL), chat("rocketchat:room1", provider="rocketchat")))
    contact = store.only_contact()
    assert contact.person_identities == {("email", IVAN_EMAIL)}
    assert len(contact.interactions) == 1


# --- the primary policy: "email A + phone B, CRM has email A + phone C: which phone wins?" ----------------------------

def _two_phones(store):
    store.receive(report(visitor(email=IVAN_EMAIL, phone="+7 903 000-11-22")))      # what the CRM had: phone C
    store.receive(report(visitor(email=IVAN_EMAIL, phone="8 916 123-45-67")))       # the chat: phone B


def test_keep_first_keeps_the_first_phone_primary_and_records_the_newest_beside_it(make_store):
    store = make_store()
    _two_phones(store)
    contact = store.only_contact()
    assert contact.primary_phone == "+79030001122"
    assert store.card(visitor(email=IVAN_EMAIL)).phones == ["+79030001122", IVAN_PHONE]


def test_prefer_newest_makes_the_most_recently_seen_phone_primary(make_store):
    store = make_store(primary_policy="prefer_newest")
    _two_phones(store)
    assert store.only_contact().primary_phone == IVAN_PHONE
    assert store.card(visitor(email=IVAN_EMAIL)).phones == [IVAN_PHONE, "+79030001122"]


def test_the_primary_follows_arrival_order_not_processing_order(make_store):
    store = make_store()
    first = store.deliver(report(visitor("Ivan", email=IVAN_EMAIL, phone="+7 903 000-11-22")))
    second = store.deliver(report(visitor("Ivan Petrov", email=IVAN_EMAIL, phone=IVAN_PHONE)))
    store.process(second, first)
    contact = store.only_contact()
    assert (contact.name, contact.primary_phone) == ("Ivan", "+79030001122")


# --- idempotency and keeping everything -------------------------------------------------------------------------------

def test_reprocessing_an_event_changes_nothing(store):
    first = store.receive(report(visitor("Ivan", email=IVAN_EMAIL, phone=IVAN_PHONE), chat("jivo:1")))
    store.receive(report(visitor(email=IVAN_EMAIL), lead("90")))
    before = (store.contacts(), [(i.id, i.updated_at) for i in store.interactions()], store.values(1))
    store.replay(first)
    after = (store.contacts(), [(i.id, i.updated_at) for i in store.interactions()], store.values(1))
    assert [c.identities for c in after[0]] == [c.identities for c in before[0]]
    assert after[1] == before[1]
    assert [(v.field, v.value, v.last_event_id) for v in after[2]] == [(v.field, v.value, v.last_event_id)
                                                                        for v in before[2]]


def test_a_person_known_only_by_name_gets_one_contact_even_when_replayed(store):
    event_id = store.receive(report(visitor("Maria", phone="no phone")))
    store.replay(event_id)
    assert [contact.name for contact in store.contacts()] == ["Maria"]


def test_an_event_with_no_person_and_no_interaction_creates_nothing(store):
    event_id = store.receive(report())
    assert store.contacts() == []
    assert store.event(event_id).result["contact_ids"] == [None]


def test_everything_a_provider_sent_about_the_person_is_kept(store):
    store.receive(report(visitor("Ivan", email=IVAN_EMAIL, company="Acme", description="VIP",
                                 attributes={"city": "Moscow", "visits": 3})))
    store.receive(report(visitor("Ivan Petrov", email=IVAN_EMAIL, phone="call after 6pm", company="Acme LLC",
                                 first_name="Ivan", last_name="Petrov")))
    kept = {(v.field, v.value) for v in store.values(1)}
    assert kept >= {("name", "Ivan"), ("name", "Ivan Petrov"), ("company", "Acme"), ("company", "Acme LLC"),
                    ("description", "VIP"), ("attribute.city", "Moscow"), ("attribute.visits", "3"),
                    ("phone", "call after 6pm"), ("first_name", "Ivan"), ("last_name", "Petrov")}
    contact = store.contact(1)
    assert (contact.name, contact.company) == ("Ivan", "Acme")


def test_a_provider_id_too_long_to_be_a_key_is_kept_as_an_unverified_value(store):
    store.receive(report(visitor(email=IVAN_EMAIL, ids={"jivo.client_id": "x" * 600})))
    assert store.only_contact().person_identities == {("email", IVAN_EMAIL)}
    assert ("identity.jivo.client_id", "x" * 600) in {(v.field, v.value) for v in store.values(1)}


# --- CRM records ------------------------------------------------------------------------------------------------------

def test_a_crm_record_is_an_identity_of_its_contact_and_its_link_shows_on_the_card(store):
    store.receive(report(visitor(email=IVAN_EMAIL), lead("90")))
    with transaction(store.runtime.sessions) as session:
        link_crm_record(session, 1, "hubspot-main", "5501", url="https://app.hubspot.com/contacts/1/record/5501")
    card = store.card(visitor(email=IVAN_EMAIL))
    assert card.crm_links == {"hubspot-main": "https://app.hubspot.com/contacts/1/record/5501"}
    assert ("crm.hubspot-main", "5501") in store.only_contact().identities


def test_one_crm_record_attached_to_two_contacts_merges_them(store):
    store.receive(report(visitor(email=IVAN_EMAIL)))
    store.receive(report(visitor("Ivan", phone=IVAN_PHONE)))
    with transaction(store.runtime.sessions) as session:
        link_crm_record(session, 1, "hubspot-main", "5501")
    with transaction(store.runtime.sessions) as session:
        assert link_crm_record(session, 2, "hubspot-main", "5501") == 1
    contact = store.only_contact()
    assert contact.person_identities == {("email", IVAN_EMAIL), ("phone", IVAN_PHONE), ("crm.hubspot-main", "5501")}
    assert (contact.name, contact.primary_phone) == ("Ivan", IVAN_PHONE)
