"""The same person through three providers' real webhooks: Jivo widget, then LiveChat, then a Roistat lead.

Requests go through /hooks with each provider's credentials and are parsed by the real provider modules.
"""
from __future__ import annotations

import pytest

from crm_sync.contacts import get_cards
from tests.conftest import make_client
from tests.contacts.provider_requests import PROVIDER_SOURCES, jivo_chat, livechat_chat, roistat_lead

EMAIL = "ivan.petrov@example.ru"


@pytest.fixture
def providers(make_store):
    store = make_store(sources=PROVIDER_SOURCES)
    return store, make_client(store.runtime)


def test_one_person_through_jivo_livechat_and_roistat_is_one_contact_with_three_interactions(providers):
    store, client = providers
    jivo_chat(7001, name="Ivan Petrov", email=EMAIL, phone="+7 916 123-45-67", number="2198").send(client)
    livechat_chat("PJ0MRSHTDG", customer_id="cust-b7ef", name="Ivan", email="Ivan.Petrov@Example.RU").send(client)
    lead_reply = roistat_lead("91", visit="12853", name="Иван Петров", phone="8 (916) 123-45-67").send(client)
    store.process_waiting()

    contact = store.only_contact()
    assert contact.person_identities == {
        ("email", EMAIL), ("phone", "+79161234567"), ("jivo.client_id", "2198"), ("jivo.visitor_number", "2198"),
        ("livechat.customer_id", "cust-b7ef"), ("roistat.visit", "12853"),
        ("roistat.order", lead_reply.get_json()["order_id"]),
    }
    assert sorted((i.provider, i.kind) for i in contact.interactions) == [
        ("jivo", "chat"), ("livechat", "chat"), ("roistat", "lead")]
    with store.session() as session:
        card = get_cards(session, [contact.id])[contact.id]
    roistat_lead_summary = next(i for i in card.interactions if i.provider == "roistat")
    assert str(roistat_lead_summary.event_id) == lead_reply.get_json()["order_id"]
    assert {("phone", "8 (916) 123-45-67"), ("phone", "+7 916 123-45-67"), ("name", "Иван Петров"),
            ("email", "Ivan.Petrov@Example.RU")} <= {(v.field, v.value) for v in store.values(contact.id)}


def test_the_next_jivo_chat_of_a_known_person_gets_the_contact_card_from_the_store(providers):
    store, client = providers
    jivo_chat(7001, name="Ivan Petrov", email=EMAIL).send(client)
    roistat_lead("91", visit="12853", email=EMAIL, phone="8 (916) 123-45-67").send(client)
    store.process_waiting()

    reply = jivo_chat(7002, email=EMAIL).send(client).get_json()
    assert reply["result"] == "ok"
    assert reply["contact_info"] == {"name": "Ivan Petrov", "phone": "+79161234567", "email": EMAIL}


def test_a_redelivered_roistat_lead_adds_no_second_interaction(providers):
    store, client = providers
    lead = roistat_lead("91", visit="12853", phone="8 (916) 123-45-67")
    first = lead.send(client).get_json()
    store.process_waiting()
    assert lead.send(client).get_json() == first
    store.process_waiting()
    assert len(store.only_contact().interactions) == 1
