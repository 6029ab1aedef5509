"""After a delivery succeeded, Jivo's reply to the next chat_accepted links the person's record in the primary CRM."""
from __future__ import annotations

from sqlalchemy import select

from crm_sync.delivery.claims import claim_due
from crm_sync.delivery.results import record_outcomes
from crm_sync.delivery.retry import RetryPolicy
from crm_sync.delivery.snapshots import build_requests
from crm_sync.destinations.base import DeliveryResult
from crm_sync.schema import Contact, ContactIdentity, DeliveryStatus
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


def test_a_batch_whose_crm_matches_two_contacts_to_one_record_merges_them_and_links_the_rest_to_the_survivor(
        make_harness, hubspot_fake):
    harness = make_harness({"hubspot-main": hubspot_settings(hubspot_fake)})
    harness.receive(jivo_chat(901, email="anna@example.ru"), jivo_chat(902, email="anna.work@example.ru"),
                    jivo_chat(903, email="anna.work@example.ru"))
    with harness.runtime.sessions.begin() as session:
        claimed = claim_due(session, "hubspot-main", harness.clock.now(), 10)
    with harness.runtime.sessions() as session:
        requests = build_requests(session, "hubspot-main", claimed)
    # The CRM found one person behind both emails (record X), and answered the second chat with another record.
    answers = [DeliveryResult("X"), DeliveryResult("X"), DeliveryResult("Z")]

    statuses = record_outcomes(harness.runtime.sessions, "hubspot-main",
                               [(item, requests[item.delivery_id], answer) for item, answer in zip(claimed, answers)],
                               harness.clock.now(), RetryPolicy.of(harness.runtime.settings.destinations["hubspot-main"]))

    assert [recorded.status for recorded in statuses.values()] == [DeliveryStatus.SUCCEEDED] * 3
    with harness.runtime.sessions() as session:
        assert session.get(Contact, 2).merged_into == 1
        links = session.execute(select(ContactIdentity.value, ContactIdentity.contact_id)
                                .where(ContactIdentity.kind == "crm.hubspot-main")).all()
    assert sorted(links) == [("X", 1), ("Z", 1)]
