"""`GET /api/contacts?email=&phone=` and `GET /api/contacts/<id>`: admin only, everything the store knows."""
from __future__ import annotations

import pytest

from crm_sync.crm_links import link_crm_record
from crm_sync.model import ConversationState, Message
from ingest.db import transaction
from tests.conftest import make_client
from tests.contacts.conftest import chat, lead, report, visitor

EMAIL, PHONE = "ivan.petrov@example.ru", "+79161234567"


@pytest.fixture
def api(store):
    return store, make_client(store.runtime)


def _ivan(store):
    store.receive(report(visitor("Ivan", email=EMAIL, phone="8 916 123-45-67", ids={"jivo.client_id": "1217"}),
                         chat("jivo:7", ConversationState.CLOSED, subject="Delivery",
                              messages=[Message(author="visitor", text="Hi", external_id="m1")])))
    store.receive(report(visitor(phone=PHONE, company="Acme"), lead("90", subject="Callback")))
    with transaction(store.runtime.sessions) as session:
        link_crm_record(session, 1, "hubspot-main", "5501", url="https://crm.example/5501")


@pytest.mark.parametrize("url", ["/api/contacts?email=a@example.ru", "/api/contacts/1"])
def test_the_contacts_api_needs_the_admin_token(api, url):
    _, client = api
    response = client.get(url)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_searching_by_a_differently_written_phone_finds_the_contact_with_everything_known(api, admin_headers):
    store, client = api
    _ivan(store)
    body = client.get("/api/contacts", query_string={"phone": "+7 (916) 123-45-67"}, headers=admin_headers).get_json()
    assert body["total"] == 1
    [contact] = body["contacts"]
    assert (contact["id"], contact["name"], contact["company"]) == (1, "Ivan", "Acme")
    assert (contact["emails"], contact["phones"]) == ([EMAIL], [PHONE])
    assert {(i["kind"], i["value"]) for i in contact["identities"]} >= {
        ("email", EMAIL), ("phone", PHONE), ("jivo.client_id", "1217"), ("crm.hubspot-main", "5501")}
    assert contact["crm_links"] == {"hubspot-main": "https://crm.example/5501"}
    assert {(i["kind"], i["state"], i["subject"]) for i in contact["interactions"]} == {
        ("chat", "closed", "Delivery"), ("lead", None, "Callback")}
    chat_detail = next(i for i in contact["interactions"] if i["kind"] == "chat")
    assert chat_detail["transcript"] == [{"author": "visitor", "author_name": None, "text": "Hi", "at": None,
                                          "external_id": "m1"}]
    assert [e["event_id"] for e in chat_detail["events"]] == [1]
    assert ("phone", "8 916 123-45-67", PHONE) in {(v["field"], v["value"], v["normalised"]) for v in contact["values"]}


def test_searching_by_email_ignores_the_domains_case(api, admin_headers):
    store, client = api
    _ivan(store)
    body = client.get("/api/contacts", query_string={"email": "ivan.petrov@EXAMPLE.RU"}, headers=admin_headers)
    assert [contact["id"] for contact in body.get_json()["contacts"]] == [1]


def test_searching_by_a_provider_identity_finds_the_contact(api, admin_headers):
    store, client = api
    _ivan(store)
    body = client.get("/api/contacts", query_string={"identity": "jivo.client_id:1217"}, headers=admin_headers)
    assert [contact["id"] for contact in body.get_json()["contacts"]] == [1]


def found_by_identity(client, admin_headers, identity: str) -> list[int]:
    body = client.get("/api/contacts", query_string={"identity": identity}, headers=admin_headers).get_json()
    return [contact["id"] for contact in body["contacts"]]


@pytest.mark.parametrize("identity", [
    pytest.param(" JIVO.Client_ID :1217", id="kind-in-any-case-and-spaces"),
    pytest.param("jivo.client_id: 1217 ", id="value-without-its-spaces"),
    pytest.param("email:Ivan.Petrov@Example.RU", id="email-by-its-normal-form"),
    pytest.param("phone:8 (916) 123-45-67", id="phone-by-its-normal-form"),
    pytest.param("roistat:lead:90", id="lead-whose-kind-holds-a-colon"),
])
def test_an_identity_is_matched_as_processing_normalises_it(api, admin_headers, identity):
    store, client = api
    _ivan(store)
    assert found_by_identity(client, admin_headers, identity) == [1]


def test_a_conversation_is_found_by_its_identity_whose_kind_holds_a_colon(api, admin_headers):
    store, client = api
    store.receive(report(visitor("Ivan"), chat("jivo:1:2")))   # Jivo's conversation ids hold colons too
    assert found_by_identity(client, admin_headers, "jivo:conversation:jivo:1:2") == [1]


def test_an_unverified_phone_is_found_by_its_exact_text(api, admin_headers):
    store, client = api
    store.receive(report(visitor("Maria", phone="call after 6pm")))
    body = client.get("/api/contacts", query_string={"phone": "call after 6pm"}, headers=admin_headers).get_json()
    assert [contact["name"] for contact in body["contacts"]] == ["Maria"]


def test_a_search_that_finds_nothing_is_an_empty_list(api, admin_headers):
    _, client = api
    body = client.get("/api/contacts", query_string={"email": "nobody@example.ru"}, headers=admin_headers)
    assert (body.status_code, body.get_json()) == (200, {"contacts": [], "total": 0})


@pytest.mark.parametrize("query", [{}, {"email": " "}, {"identity": "no-colon"}])
def test_a_search_without_a_usable_filter_is_a_clear_json_error(api, admin_headers, query):
    _, client = api
    response = client.get("/api/contacts", query_string=query, headers=admin_headers)
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_filter"


def test_an_unknown_contact_is_not_found_as_json(api, admin_headers):
    _, client = api
    response = client.get("/api/contacts/99", headers=admin_headers)
    assert (response.status_code, response.get_json()["error"]) == (404, "not_found")


def test_a_merged_contact_id_shows_the_surviving_contact(api, admin_headers):
    store, client = api
    store.receive(report(visitor(email=EMAIL)))
    store.receive(report(visitor(phone=PHONE)))
    store.receive(report(visitor(email=EMAIL, phone=PHONE)))
    body = client.get("/api/contacts/2", headers=admin_headers).get_json()
    assert (body["id"], body["requested_id"], body["merged_from"]) == (1, 2, [2])
    assert (body["emails"], body["phones"]) == ([EMAIL], [PHONE])
