"""An interaction's agent and page: the newest report's, completed field by field by earlier reports of the same agent
(id) or page (url), whatever the processing order. On SQLite and PostgreSQL, through `process_events`."""
from __future__ import annotations

import itertools
import json

import pytest

from crm_sync.model import Agent, Page
from tests.conftest import make_client, payload
from tests.contacts.conftest import chat, report, visitor
from tests.contacts.provider_requests import JSON, LIVECHAT_SECRET, PROVIDER_SOURCES, Delivery

IVAN = visitor("Ivan", email="ivan@example.ru")


def livechat(name: str, webhook_id: str) -> Delivery:
    body = json.loads(payload(f"livechat/{name}"))
    body.update(secret_key=LIVECHAT_SECRET, webhook_id=webhook_id)
    return Delivery("POST", "/hooks/livechat-main", json.dumps(body).encode(), JSON)


def final_details(store, reports: list, order) -> dict:
    event_ids = [store.deliver(record) for record in reports]
    for index in order:   # one message each: each report merged into what the ones before it left
        store.process(event_ids[index])
    [interaction] = store.interactions()
    return interaction.details


def test_a_later_livechat_message_naming_only_the_agents_id_keeps_the_agents_name_and_email(make_store):
    store = make_store(sources=PROVIDER_SOURCES)
    client = make_client(store.runtime)
    livechat("incoming_chat.json", "w1").send(client)
    store.process_waiting()
    livechat("incoming_event_agent_message.json", "w2").send(client)
    store.process_waiting()

    [interaction] = store.interactions()
    assert interaction.details["agent"] == {"id": "smith@example.com", "name": "Agent Smith",
                                            "email": "smith@example.com"}


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_reports_of_the_same_agent_complete_each_other_in_any_order(store, order):
    reports = [report(IVAN, chat("c1", agent=Agent(id="7", name="Olga", email="olga@example.ru"))),
               report(IVAN, chat("c1", agent=Agent(id="7"))),
               report(IVAN, chat("c1", agent=Agent(id="7", name="Olga Petrova")))]

    details = final_details(store, reports, order)

    assert details["agent"] == {"id": "7", "name": "Olga Petrova", "email": "olga@example.ru"}


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_another_agent_replaces_the_whole_agent(store, order):
    reports = [report(IVAN, chat("c1", agent=Agent(id="7", name="Olga", email="olga@example.ru"))),
               report(IVAN, chat("c1", agent=Agent(id="8")))]

    details = final_details(store, reports, order)

    assert details["agent"] == {"id": "8", "name": None, "email": None}


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_what_an_agent_said_before_another_agent_took_over_is_not_brought_back(store, order):
    """Olga, then Petr, then Olga again naming only her id: her first report is history, in any processing order."""
    reports = [report(IVAN, chat("c1", agent=Agent(id="7", name="Olga"))),
               report(IVAN, chat("c1", agent=Agent(id="8", name="Petr"))),
               report(IVAN, chat("c1", agent=Agent(id="7")))]

    details = final_details(store, reports, order)

    assert details["agent"] == {"id": "7", "name": None, "email": None}


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_a_later_report_of_the_same_page_without_its_title_keeps_the_title(store, order):
    reports = [report(IVAN, chat("c1", page=Page(url="https://shop.example/cart", title="Cart"))),
               report(IVAN, chat("c1", page=Page(url="https://shop.example/cart")))]

    details = final_details(store, reports, order)

    assert details["page"] == {"url": "https://shop.example/cart", "title": "Cart"}


def test_another_page_replaces_the_whole_page(store):
    reports = [report(IVAN, chat("c1", page=Page(url="https://shop.example/cart", title="Cart"))),
               report(IVAN, chat("c1", page=Page(url="https://shop.example/pay")))]

    details = final_details(store, reports, (0, 1))

    assert details["page"] == {"url": "https://shop.example/pay", "title": None}
