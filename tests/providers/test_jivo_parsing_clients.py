"""JivoChat client and CRM events → contact updates (or ignored, or refused, with the reason). Pure parsing: no
database.
"""
from __future__ import annotations

import pytest

from crm_sync.model import InteractionKind
from ingest.providers import IgnoreEvent, ParseError
from tests.conftest import payload
from tests.providers.jivo_support import identities, parse_one, provider, request_of


def test_client_updated_is_a_contact_update_linking_the_client_id_and_the_visitor_number():
    record = parse_one(payload("jivo/client_updated.json"))
    assert record.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert identities(record) == {"jivo.client_id": "1217", "jivo.visitor_number": "1217"}
    assert record.interaction.agent.name == "Agent3"
    assert record.interaction.tags == ["Sales"]


def test_client_attribute_updated_records_the_attributes_on_the_client():
    record = parse_one(payload("jivo/client_attribute_updated.json"))
    assert record.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert identities(record) == {"jivo.client_id": "1217", "jivo.visitor_number": "1217"}
    assert record.person.attributes == {"some_number_attribute_name": 1234,
                                        "some_string_attribute_name": "Some string"}


def test_a_client_id_written_as_text_or_as_a_number_is_the_same_client():
    as_number = parse_one(payload("jivo/client_attribute_updated.json"))
    as_text = parse_one(payload("jivo/client_attribute_updated_string_id.json"))
    assert identities(as_number)["jivo.client_id"] == identities(as_text)["jivo.client_id"] == "1217"
    assert as_text.person.attributes["Город"] == "Подольск"


def test_client_attribute_updated_naming_no_client_is_ignored_with_the_reason():
    with pytest.raises(IgnoreEvent, match="no client_id"):
        provider.parse(request_of({"event_name": "client_attribute_updated", "attributes": {"a": 1}}))


def test_client_attribute_updated_naming_its_client_only_by_user_token_is_ignored():
    with pytest.raises(IgnoreEvent, match="no client_id"):
        provider.parse(request_of({"event_name": "client_attribute_updated", "user_token": "https://shop.example/me",
                               "attributes": {"a": 1}}))


def test_a_crm_client_event_is_a_contact_update_with_the_cards_contacts():
    record = parse_one(payload("jivo/crm_updated_client_contacts.json"))
    person = record.person
    assert record.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert (person.name, person.phones, person.emails) == ("Фёдор Сидоров", ["8 (916) 555-12-34"],
                                                          ["f.sidorov@example.ru"])
    assert identities(record) == {"jivo.client_id": "1217", "jivo.visitor_number": "1217"}
    assert person.attributes["crm_link"] == "https://crm.example.ru/clients/1217"


def test_a_crm_agent_assignment_names_the_responsible_agent_and_the_organization():
    record = parse_one(payload("jivo/crm_assigned_agent_to_client.json"))
    assert record.interaction.agent.id == "2"
    assert (record.person.company, record.person.emails) == ("Company", ["johnsmith@mail.com"])


def test_a_crm_status_assignment_carrying_a_client_card_is_a_contact_update():
    record = parse_one(payload("jivo/crm_assigned_status.json"))
    assert record.interaction.kind == InteractionKind.CONTACT_UPDATE
    assert identities(record) == {"jivo.client_id": "1", "jivo.visitor_number": "1"}
    assert record.person.attributes["category"] == "unsuccessful"


def test_a_crm_client_event_naming_no_client_is_a_parse_error():
    with pytest.raises(ParseError, match="deleted_client carries no client"):
        provider.parse(request_of({"event_type": "crm_client", "event_name": "deleted_client", "contacts": []}))


@pytest.mark.parametrize("name, about", [
    ("crm_created_pipeline.json", "pipeline"), ("crm_created_deal.json", "deal"), ("crm_completed_task.json", "task"),
])
def test_crm_events_about_the_crm_itself_are_ignored_with_a_reason(name, about):
    with pytest.raises(IgnoreEvent, match=f"CRM {about} event without a client card"):
        provider.parse(request_of(payload(f"jivo/{name}")))
