"""After a delivery succeeded, Jivo's reply to the next chat_accepted links the person's record in the primary CRM."""
from __future__ import annotations

from crm_sync.schema import DeliveryStatus
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import hubspot_settings, kommo_settings
from tests.fakes import kommo as fake_kommo


def test_jivo_crm_link_points_to_the_primary_destinations_record(make_harness, hubspot_fake, kommo_fake):
    # "a-kommo" sorts first: the link must come from being primary, not from the name.
    harness = make_harness({"a-kommo": kommo_settings(kommo_fake),
                            "hubspot-main": hubspot_settings(hubspot_fake, primary=True)})
    first = harness.send(jivo_chat(301, name="Olga", email="olga@example.com", phone="+79161230201"))[0]
    harness.process_waiting()
    harness.drain_until_settled()
    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 2}

    reply = harness.send(jivo_chat(302, name="Olga", email="olga@example.com", phone="+79161230201"))[0].json

    (record,) = hubspot_fake.records_with_email("olga@example.com")
    (kommo_contact,) = kommo_fake.contacts_with(email="olga@example.com")
    hubspot_url = f"https://app.hubspot.com/contacts/4242/record/0-1/{record['id']}"
    assert "crm_link" not in first.json
    assert reply["crm_link"] == hubspot_url and reply["enable_assign"] is True
    assert {"title": "CRM: a-kommo", "content": f"{kommo_fake.url}/contacts/detail/{kommo_contact['id']}",
            "link": f"{kommo_fake.url}/contacts/detail/{kommo_contact['id']}"} in reply["custom_data"]
    assert fake_kommo.TOKEN not in str(reply)
