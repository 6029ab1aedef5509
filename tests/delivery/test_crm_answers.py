"""CRM answers that are no answer, through the engine: a glitch in place of a record id links and merges no one, an id
too long to store fails nobody, and an answer of the wrong shape is a `crm_answer` failure, not a module crash."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_sync.schema import Contact, ContactIdentity, DeliveryStatus
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import kommo_settings
from tests.fakes.base import Fault, FakeResponse
from tests.fakes.webhook import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ANNA = jivo_chat(501, name="Anna Alpha", email="anna@a.example", phone="+79161110001")
BORIS = jivo_chat(502, name="Boris Beta", email="boris@b.example", phone="+79162220002")


def webhook_settings(receiver: WebhookReceiver, **overrides) -> dict:
    return {"kind": "webhook", "url": f"{receiver.url}/hooks/crm", "secret": SECRET, **overrides}


def merged_contacts(harness) -> list[int]:
    with harness.runtime.sessions() as session:
        return list(session.scalars(select(Contact.id).where(Contact.merged_into.is_not(None))))


def anna_then_boris(harness) -> None:
    """Two people, each delivered before the other arrives: the second meets whatever the first left linked."""
    for chat in (ANNA, BORIS):
        harness.receive(chat)
        harness.drain_until_settled()


def crm_links(harness) -> list[tuple[str, str, int]]:
    with harness.runtime.sessions() as session:
        return sorted(session.execute(select(ContactIdentity.kind, ContactIdentity.value, ContactIdentity.contact_id)
                                      .where(ContactIdentity.kind.like("crm.%"))).all())


@pytest.mark.parametrize("record_id", [0, False, {"ok": True}], ids=["zero", "false", "object"])
def test_a_webhook_record_id_that_is_no_record_id_links_and_merges_no_one(make_harness, fakes, record_id):
    receiver = fakes(WebhookReceiver)
    receiver.reply = {"record_id": record_id}
    harness = make_harness({"hook": webhook_settings(receiver)})

    anna_then_boris(harness)

    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 2}
    assert [row.crm_contact_id for row in harness.deliveries()] == [None, None]
    assert crm_links(harness) == [] and merged_contacts(harness) == []


def test_a_webhook_record_id_too_long_to_store_fails_no_delivery_of_the_batch(make_harness, fakes):
    receiver = fakes(WebhookReceiver)
    receiver.reply = lambda request: {"record_id": "x" * 600 if request.json()["data"]["contact"]["name"] == "Anna"
                                      else "B-1"}
    harness = make_harness({"hook": webhook_settings(receiver)})
    harness.receive(jivo_chat(801, name="Anna", phone="+79161110081"), jivo_chat(802, name="Boris",
                                                                                 phone="+79161110082"))

    harness.drain_until_settled()

    assert [(row.status, row.attempts) for row in harness.deliveries()] == [(DeliveryStatus.SUCCEEDED, 1)] * 2
    assert len(receiver.received) == 2
    assert [(kind, value) for kind, value, _ in crm_links(harness)] == [("crm.hook", "B-1")]


def test_a_kommo_lead_answered_without_its_contact_id_merges_no_one(make_harness, kommo_fake):
    def without_contact_ids(answer: FakeResponse) -> FakeResponse:
        answer.body = [{**item, "contact_id": None} for item in answer.body]
        return answer
    kommo_fake.faults.script(*[Fault.rewrite_answer("leads/complex", without_contact_ids) for _ in range(2)])
    harness = make_harness({"kommo": kommo_settings(kommo_fake)})

    anna_then_boris(harness)

    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 2}
    assert merged_contacts(harness) == [] and len(kommo_fake.contacts) == 2 and len(kommo_fake.leads) == 2
    assert sorted(value for _, value, _ in crm_links(harness)) == sorted(str(c) for c in kommo_fake.contacts)


def test_an_answer_of_the_wrong_shape_is_recorded_as_crm_answer_not_as_internal_error(make_harness, kommo_fake):
    kommo_fake.faults.script(Fault.respond(200, {"title": "Bad Request", "status": 400,
                                                 "detail": "Account is blocked"}, "leads/complex"))
    harness = make_harness({"kommo": kommo_settings(kommo_fake)})
    harness.receive(ANNA)

    harness.drain("kommo")

    (row,) = harness.deliveries()
    assert (row.status, row.last_error_class) == (DeliveryStatus.FAILED, "crm_answer")
    assert row.last_error.startswith("kommo POST /api/v4/leads/complex: answered HTTP 200 with JSON an object")
