"""Kommo retries: the contact a lost attempt created is found again (by an earlier revision's lead, or by our contact
id in a contact field created on first use), and a lost write says that its outcome is unknown."""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from tests.destinations.builders import chat, contact, delivery
from tests.fakes import kommo as kommo_fake_module
from tests.fakes.base import Fault

ANONYMOUS = contact(7, name="Anna", email=None, phone=None)   # known by a chat id only: nothing to search Kommo by


def lose_the_answer(kommo, fake, request, step: str = "POST /api/v4/leads/complex") -> None:
    """An attempt whose write lands in Kommo while its answer is lost."""
    fake.faults.script(Fault.after_write(match=step, then="drop"))
    with pytest.raises(TransientError):
        kommo.deliver(request)


def test_a_retry_takes_the_contact_from_the_lead_an_earlier_revision_wrote(kommo, kommo_fake):
    lose_the_answer(kommo, kommo_fake, delivery(ANONYMOUS, chat(39), key="kommo:i39:r1"))
    (orphan,) = kommo_fake.contacts
    kommo_fake.contacts[orphan]["custom_fields_values"] = None   # written before contacts carried our contact id

    result = kommo.deliver(delivery(ANONYMOUS, chat(39), key="kommo:i39:r2", attempt=2))

    assert list(kommo_fake.contacts) == [orphan] and result.contact_record_id == str(orphan)
    assert len(kommo_fake.leads_of(orphan)) == 2


def test_a_retry_finds_the_contact_a_lost_attempt_created_by_our_contact_id(kommo, kommo_fake):
    lose_the_answer(kommo, kommo_fake, delivery(ANONYMOUS, key="c-7", with_interaction=False),
                    step="POST /api/v4/contacts")
    (created,) = kommo_fake.contacts

    result = kommo.deliver(delivery(ANONYMOUS, key="c-7", attempt=2, with_interaction=False))

    assert list(kommo_fake.contacts) == [created] and result.contact_record_id == str(created)
    assert kommo_fake.contact_value(created) == "crm-ingest:7"


def test_a_contact_older_than_the_recent_window_is_found_by_searching_our_contact_id(kommo, kommo_fake):
    lose_the_answer(kommo, kommo_fake, delivery(ANONYMOUS, key="c-7", with_interaction=False),
                    step="POST /api/v4/contacts")
    (created,) = kommo_fake.contacts
    kommo_fake.contacts[created].update(created_at=0, updated_at=0)   # changed long ago: in no recent listing

    result = kommo.deliver(delivery(ANONYMOUS, key="c-7", attempt=2, with_interaction=False))

    assert list(kommo_fake.contacts) == [created] and result.contact_record_id == str(created)
    assert [call.query["query"] for call in kommo_fake.calls if "query" in call.query] == [["crm-ingest:7"]]


def test_a_first_attempt_spends_no_call_on_our_contact_id(kommo, kommo_fake):
    result = kommo.deliver(delivery(contact(email="ivan@example.com", phone=None), key="k-1"))

    assert kommo_fake.contact_value(result.contact_record_id) == "crm-ingest:1"
    assert [f"{call.method} {call.path}" for call in kommo_fake.calls] == [
        "GET /api/v4/contacts", "GET /api/v4/contacts", "POST /api/v4/leads/complex", "POST /api/v4/leads/notes"]


def test_the_contact_id_field_is_created_on_first_use(kommo, kommo_fake):
    kommo_fake.delete_contact_field()   # an account crm-ingest never wrote to

    first = kommo.deliver(delivery(contact(1), key="k-1"))
    second = kommo.deliver(delivery(contact(2, email="olga@example.com", phone=None), key="k-2"))

    (field,) = [f for f in kommo_fake.contact_fields.values() if f["code"] == "CRM_INGEST_CONTACT_ID"]
    assert (field["type"], field["is_api_only"]) == ("text", True)
    assert kommo_fake.count_calls("POST /api/v4/contacts/custom_fields") == 1
    assert kommo_fake.contact_value(first.contact_record_id) == "crm-ingest:1"
    assert kommo_fake.contact_value(second.contact_record_id) == "crm-ingest:2"
    assert len(kommo_fake.leads) == 2


def test_a_refusal_of_another_value_does_not_create_the_field_again(kommo_fake, build_destination):
    kommo = build_destination("kommo", base_url=kommo_fake.url, token=kommo_fake_module.TOKEN, key_field_id=1)

    with pytest.raises(PermanentError):
        kommo.deliver(delivery())

    assert kommo_fake.count_calls("POST /api/v4/contacts/custom_fields") == 0
    assert kommo_fake.count_calls("POST /api/v4/leads/complex") == 1


@pytest.mark.parametrize("fault, unknown", [
    (Fault.after_write("POST /api/v4/leads/complex", then="timeout"), True),
    (Fault.after_write("POST /api/v4/leads/complex", then="drop"), True),
    (Fault.timeout("GET /api/v4/contacts"), False),
    (Fault.server_error("POST /api/v4/leads/complex"), False),
    (Fault.respond(504, {"detail": "gateway timeout"}, "POST /api/v4/leads/complex"), True),
    (Fault.respond(504, {"detail": "gateway timeout"}, "GET /api/v4/contacts"), False),
], ids=["write-timed-out", "write-dropped", "read-timed-out", "write-answered-5xx", "write-gateway-timeout",
        "read-gateway-timeout"])
def test_only_a_write_whose_answer_was_lost_has_an_unknown_outcome(kommo, kommo_fake, fault, unknown):
    kommo_fake.faults.script(fault)

    with pytest.raises(TransientError) as caught:
        kommo.deliver(delivery())

    assert caught.value.outcome_unknown is unknown
