"""What the JivoChat contact card shows for a contact: the CRM records as links, phones readably, and the count
of previous chats. Pure rendering (`card_reply`): no database.
"""
from __future__ import annotations

from datetime import datetime, timezone

from crm_sync.contacts import ContactCard, InteractionSummary
from ingest.providers.jivo.card import card_reply


def _card(**fields) -> ContactCard:
    return ContactCard(**{"contact_id": 1, "name": "Анна Петрова", "emails": [], "phones": [], "interactions": [],
                          "crm_links": {}, **fields})


def _interaction(id_: int, kind: str, conversation_id: str | None = None, subject: str | None = None):
    moment = datetime(2024, 5, id_ % 28 + 1, 9, 30, tzinfo=timezone.utc)
    return InteractionSummary(id=id_, contact_id=1, event_id=id_, kind=kind, provider="jivo", source="jivo-main",
                              conversation_id=conversation_id, external_id=None, state=None, subject=subject,
                              occurred_at=moment, updated_at=moment)


def test_the_first_crm_record_is_the_open_in_crm_button_and_enables_assign():
    body = card_reply(_card(crm_links={"hubspot-main": "https://app.hubspot.com/contacts/1/record/0-1/51"}), None)
    assert body["crm_link"] == "https://app.hubspot.com/contacts/1/record/0-1/51"
    assert body["enable_assign"] is True


def test_a_contact_in_several_crms_gets_every_record_as_a_linked_line():
    links = {"amo": "https://amo.example/contacts/5", "hubspot-main": "https://app.hubspot.com/contacts/1/r/51"}
    body = card_reply(_card(crm_links=links), None)
    assert body["crm_link"] == "https://amo.example/contacts/5"
    assert [line for line in body["custom_data"] if line["title"].startswith("CRM")] == [
        {"title": "CRM: amo", "content": links["amo"], "link": links["amo"]},
        {"title": "CRM: hubspot-main", "content": links["hubspot-main"], "link": links["hubspot-main"]},
    ]


def test_a_phone_with_an_extension_is_shown_readably():
    body = card_reply(_card(phones=["+74951234567;ext=305"], emails=["anna@example.ru"]), None)
    assert body["contact_info"] == {"name": "Анна Петрова", "phone": "+74951234567 ext. 305",
                                    "email": "anna@example.ru"}


def test_a_history_at_the_card_limit_is_counted_as_at_least_that_many_chats():
    history = [_interaction(i, "chat", f"jivo:1:{i}") for i in range(20)]
    body = card_reply(_card(interactions=history), "jivo:1:0")
    assert body["custom_data"][0] == {"title": "Previous chats", "content": "19+"}
