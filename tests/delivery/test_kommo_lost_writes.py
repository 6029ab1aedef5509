"""Kommo writes whose answer never came: the retry finds what they wrote instead of writing it again.

Kommo has no idempotency of its own, so only the retry's look-ups keep a lost write from becoming a second record:
they must see it even when the interaction changed before the retry (a new revision has a new key), and even when
Kommo commits it only after the client gave up.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from crm_sync.schema import DeliveryStatus
from tests.conftest import payload
from tests.contacts.provider_requests import JSON, LIVECHAT_SECRET, Delivery as ProviderRequest, jivo_chat, \
    livechat_chat
from tests.delivery.conftest import kommo_settings
from tests.delivery.late_writes import LateWrite
from tests.fakes.faults import Fault
from tests.fakes.kommo import KEY_FIELD_ID

NAME = "kommo"
TIMEOUT = 0.5   # short: a held request costs the test this much real time


def livechat_message(chat_id: str, event_id: str, text: str, author_id: str) -> ProviderRequest:
    body = json.loads(payload("livechat/incoming_event_message.json"))
    body["secret_key"] = LIVECHAT_SECRET
    body["payload"].update(chat_id=chat_id, thread_id=f"T-{chat_id}")
    body["payload"]["event"].update(id=event_id, text=text, author_id=author_id)
    return ProviderRequest("POST", "/hooks/livechat-main", json.dumps(body).encode(), JSON)


def lead_keys(fake, contact_id: int) -> list[str]:
    return sorted(field["values"][0]["value"] for lead in fake.leads_of(contact_id)
                  for field in lead["custom_fields_values"] if field["field_id"] == KEY_FIELD_ID)


@pytest.fixture
def harness(make_harness, kommo_fake):
    return make_harness({NAME: kommo_settings(kommo_fake, timeout_seconds=TIMEOUT, retry_initial_seconds=0.1)})


def test_a_retry_after_the_conversation_changed_reuses_the_contact_the_lost_write_created(harness, kommo_fake):
    # The person is known by their LiveChat id only: no email or phone to search Kommo by.
    harness.receive(livechat_chat("LC39", customer_id="lc-visitor-39", name="Anna"))
    kommo_fake.faults.script(Fault.after_write("POST /api/v4/leads/complex", then="timeout"))
    harness.drain(NAME)   # r1: Kommo writes the contact and the lead, the answer is lost
    (row,) = harness.deliveries(NAME)
    assert (row.status, row.revision, len(kommo_fake.contacts)) == (DeliveryStatus.FAILED, 1, 1)

    harness.receive(livechat_message("LC39", "ev-39-a", "I need a quote", "lc-visitor-39"))   # r2, before the retry
    harness.drain_until_settled([NAME])

    (row,) = harness.deliveries(NAME)
    (contact,) = kommo_fake.contacts.values()
    assert (row.status, row.delivered_revision, row.attempts) == (DeliveryStatus.SUCCEEDED, 2, 2)
    assert row.crm_contact_id == str(contact["id"])
    assert lead_keys(kommo_fake, contact["id"]) == [f"{NAME}:i{row.interaction_id}:r1",
                                                    f"{NAME}:i{row.interaction_id}:r2"]


def test_a_write_kommo_commits_after_the_timeout_is_found_by_the_retry(harness, kommo_fake):
    harness.receive(jivo_chat(401, name="Ivan Petrov", phone="+79161230401"))
    late = LateWrite(kommo_fake, "POST /api/v4/leads/complex", after_seconds=2 * TIMEOUT, clock=harness.clock)
    harness.drain_until_settled([NAME])   # attempt 1 times out; Kommo commits its write a timeout later
    harness.clock.advance(60)
    late.land()   # if the retry came too soon, the late write lands only now: beside the retry's own

    (row,) = harness.deliveries(NAME)
    (contact,) = kommo_fake.contacts.values()
    (lead,) = kommo_fake.leads.values()
    assert (row.status, row.attempts, row.crm_interaction_id) == (DeliveryStatus.SUCCEEDED, 2, str(lead["id"]))
    assert len(kommo_fake.notes_of(lead["id"])) == 1


def test_a_write_whose_answer_was_lost_is_retried_no_sooner_than_twice_the_timeout(harness, kommo_fake):
    harness.receive(jivo_chat(402, name="Ivan Petrov", phone="+79161230402"))
    kommo_fake.faults.script(Fault.after_write("POST /api/v4/leads/complex", then="drop"))

    harness.drain(NAME)

    (row,) = harness.deliveries(NAME)
    assert row.status == DeliveryStatus.FAILED
    assert row.next_attempt_at - row.last_attempt_at >= timedelta(seconds=2 * TIMEOUT)

