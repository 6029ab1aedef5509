"""Roistat's polls of our store: `export` (orders) and `export_clients`, built from processed leads.

An order's id is the order_id Roistat was answered for the lead; Roistat pages with offset/limit and expects the same
total_count on every page.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import payload
from tests.providers.roistat_support import HOOK, PASSWORD, SOURCES, TOKEN, USER, sample, with_param

PAST = "1393673200"     # 2014-03-01
FUTURE = "4102444800"   # 2100-01-01


@pytest.fixture
def harness(provider_harness):
    return provider_harness(SOURCES)


def send_lead(harness, sample_name="lead.query", hook=HOOK, **changes) -> str:
    query = sample(sample_name)
    for param, value in changes.items():
        query = with_param(query, param, value)
    response = harness.client.get(hook, query_string=query)
    assert response.status_code == 200
    return response.json["order_id"]


def poll(harness, action="export", date=PAST, **paging):
    query = f"user={USER}&token={TOKEN}&action={action}&date={date}"
    query += "".join(f"&{key}={value}" for key, value in paging.items())
    response = harness.client.get(HOOK, query_string=query)
    assert response.status_code == 200, response.json
    return response.json


def test_each_processed_lead_is_an_order_with_the_order_id_it_was_answered(harness):
    poll(harness, "import_scheme")  # a stored event first, so event ids and interaction ids differ
    answered = {send_lead(harness), send_lead(harness, "lead_lead_hunter_ru.query")}
    harness.process_all()
    assert {order["id"] for order in poll(harness)["orders"]} == answered


def test_an_order_carries_the_title_visit_creation_time_status_and_lead_id(harness):
    send_lead(harness)
    harness.process_all()
    [order] = poll(harness)["orders"]
    assert order["name"] == "Caught lead: 11230001122"
    assert order["roistat"] == "12852"
    assert order["date_create"] == "1435482774"  # 2015-06-28 09:12:54 UTC
    assert order["status"] == "open"
    assert order["fields"] == {"roistat_lead_id": "90"}


def test_the_order_client_is_the_client_exported_for_that_person(harness):
    send_lead(harness)
    harness.process_all()
    [order] = poll(harness)["orders"]
    [client] = poll(harness, "export_clients")["clients"]
    assert order["client_id"] == client["id"]
    assert client["email"] == "email@mail.com"


def test_the_export_answer_has_the_shape_of_roistats_example(harness):
    example = json.loads(payload("roistat/export.response.json"))
    send_lead(harness)
    harness.process_all()
    answer = poll(harness)
    assert answer.keys() == example.keys()
    assert answer["pagination"].keys() == example["pagination"].keys()
    assert set(answer["orders"][0]) <= set(example["orders"][0])
    assert {"id", "name", "date_create", "status", "roistat", "client_id"} <= set(answer["orders"][0])
    assert all(status.keys() == {"id", "name"} for status in answer["statuses"])


def test_the_first_call_without_a_limit_gets_our_page_size(harness):
    send_lead(harness)
    harness.process_all()
    assert poll(harness, offset=0)["pagination"] == {"total_count": 1, "limit": 1000}


def test_total_count_is_the_same_on_every_page_and_the_pages_cover_every_order_once(harness):
    answered = [send_lead(harness, id=str(lead_id), email=f"lead{lead_id}%40example.com") for lead_id in range(1, 6)]
    harness.process_all()
    pages = [poll(harness, offset=offset, limit=2) for offset in (0, 2, 4)]
    assert [page["pagination"] for page in pages] == [{"total_count": 5, "limit": 2}] * 3
    assert [order["id"] for page in pages for order in page["orders"]] == answered


def test_only_leads_changed_since_date_are_exported(harness):
    send_lead(harness)
    harness.process_all()
    assert poll(harness, date=FUTURE)["orders"] == []
    assert poll(harness, date=FUTURE)["pagination"]["total_count"] == 0
    assert len(poll(harness, date=PAST)["orders"]) == 1


def test_a_redelivered_lead_is_exported_once(harness):
    send_lead(harness)
    send_lead(harness)
    harness.process_all()
    assert len(poll(harness)["orders"]) == 1


def test_leads_not_yet_processed_are_not_exported_yet(harness):
    send_lead(harness)
    assert poll(harness)["orders"] == []


def test_leads_of_another_roistat_source_are_not_exported(provider_harness):
    other = {"roistat-second": {"provider": "roistat", "user": USER, "password": PASSWORD}}
    harness = provider_harness({**SOURCES, **other})
    mine = send_lead(harness)
    send_lead(harness, "lead_lead_hunter_ru.query", hook="/hooks/roistat-second")
    harness.process_all()
    assert [order["id"] for order in poll(harness)["orders"]] == [mine]


def test_export_clients_gives_name_email_and_the_phone_as_bare_digits(harness):
    send_lead(harness, "lead_lead_hunter_ru.query")
    harness.process_all()
    [client] = poll(harness, "export_clients")["clients"]
    assert client["name"] == "Иван Петров"
    assert client["email"] == "ivan.petrov@example.ru"
    assert client["phone"] == "79161234567"


def test_two_leads_of_one_person_give_one_client(harness):
    send_lead(harness, id="90")
    send_lead(harness, id="91", title="Caught+lead%3A+again")
    harness.process_all()
    answer = poll(harness, "export_clients")
    assert len(answer["clients"]) == 1
    assert answer["pagination"]["total_count"] == 1


def test_export_clients_pages_with_a_stable_total(harness):
    for lead_id in range(1, 4):
        send_lead(harness, id=str(lead_id), visit=str(20000 + lead_id), email=f"client{lead_id}%40example.com",
                  phone="")
    harness.process_all()
    pages = [poll(harness, "export_clients", offset=offset, limit=2) for offset in (0, 2)]
    assert [page["pagination"]["total_count"] for page in pages] == [3, 3]
    emails = [client["email"] for page in pages for client in page["clients"]]
    assert sorted(emails) == ["client1@example.com", "client2@example.com", "client3@example.com"]


def test_a_client_without_a_name_is_named_by_its_email(harness):
    send_lead(harness, name="", email="anon%40example.com")
    harness.process_all()
    [client] = poll(harness, "export_clients")["clients"]
    assert client["name"] == "anon@example.com"



def test_the_same_lead_id_in_two_roistat_projects_is_an_order_in_each(provider_harness):
    other = {"roistat-second": {"provider": "roistat", "user": USER, "password": PASSWORD}}
    harness = provider_harness({**SOURCES, **other})
    mine = send_lead(harness)
    theirs = send_lead(harness, "lead_lead_hunter_ru.query", hook="/hooks/roistat-second", id="90")
    harness.process_all()
    query = f"user={USER}&token={TOKEN}&action=export&date={PAST}"
    second = harness.client.get("/hooks/roistat-second", query_string=query).json
    assert [order["id"] for order in poll(harness)["orders"]] == [mine]
    assert [order["id"] for order in second["orders"]] == [theirs]
