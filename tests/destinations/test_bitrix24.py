"""Bitrix24: one contact per person (ORIGIN_ID = our contact), one lead per delivery (ORIGIN_ID = our key)."""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from crm_sync.destinations.content import marker
from tests.destinations.builders import contact, deliver_until_done, delivery
from tests.fakes.base import Fault
from tests.fakes.bitrix24 import portal_page


def test_a_new_person_becomes_a_contact_and_the_conversation_a_lead_linked_to_it(bitrix, bitrix_fake):
    result = bitrix.deliver(delivery(key="k-1"))

    (record,) = bitrix_fake.contacts_for(1)
    assert (record["NAME"], record["LAST_NAME"]) == ("Ivan", "Petrov")
    assert [v["VALUE"] for v in record["EMAIL"]] == ["ivan@example.com"]
    assert [v["VALUE"] for v in record["PHONE"]] == ["+79161234567"]
    assert record["ORIGINATOR_ID"] == "crm-ingest"
    (lead,) = bitrix_fake.leads_of(record["ID"])
    assert (lead["ORIGINATOR_ID"], lead["ORIGIN_ID"], lead["UTM_SOURCE"]) == ("crm-ingest", "k-1", "google")
    assert "Hello, is the blue one in stock?" in lead["COMMENTS"] and marker("k-1") in lead["COMMENTS"]
    assert (result.contact_record_id, result.interaction_record_id) == (record["ID"], lead["ID"])
    assert result.record_url == f"{bitrix_fake.url}/crm/contact/details/{record['ID']}/"


@pytest.mark.parametrize("step", ["crm.contact.add", "crm.lead.add"])
@pytest.mark.parametrize("then", ["500", "drop"])
def test_a_retry_after_a_lost_response_writes_nothing_twice(bitrix, bitrix_fake, step, then):
    bitrix_fake.faults.script(Fault.after_write(match=step, then=then))

    with pytest.raises(TransientError):
        bitrix.deliver(delivery(key="k-1"))
    deliver_until_done(bitrix, delivery(key="k-1", attempt=2))

    (record,) = bitrix_fake.contacts_for(1)
    assert len(bitrix_fake.leads_of(record["ID"])) == 1


def test_search_lag_does_not_duplicate_the_contact(bitrix, bitrix_fake):
    bitrix_fake.faults.search_lag_ms = 60_000
    bitrix_fake.faults.script(Fault.after_write(match="crm.contact.add"))

    with pytest.raises(TransientError):
        bitrix.deliver(delivery(key="k-1"))
    bitrix.deliver(delivery(key="k-2"))   # the next conversation, attempt 1, with no link stored yet

    (record,) = bitrix_fake.contacts_for(1)
    assert len(bitrix_fake.contacts) == 1
    assert [lead["ORIGIN_ID"] for lead in bitrix_fake.leads_of(record["ID"])] == ["k-2"]


def test_a_person_a_manager_created_is_found_by_email_and_gets_the_new_phone(bitrix, bitrix_fake):
    existing = bitrix_fake.seed_contact(NAME="Ivan", EMAIL=[{"VALUE": "IVAN@example.com", "VALUE_TYPE": "WORK"}])

    result = bitrix.deliver(delivery())

    assert result.contact_record_id == str(existing) and len(bitrix_fake.contacts) == 1
    assert [v["VALUE"] for v in bitrix_fake.contacts[existing]["PHONE"]] == ["+79161234567"]
    assert [v["VALUE"] for v in bitrix_fake.contacts[existing]["EMAIL"]] == ["IVAN@example.com"]


def test_a_linked_record_is_used_without_any_lookup(bitrix, bitrix_fake):
    linked = bitrix.deliver(delivery(key="k-1")).contact_record_id
    bitrix_fake.calls.clear()

    bitrix.deliver(delivery(contact(record_id=linked), key="k-2"))

    assert bitrix_fake.count_calls("list|findbycomm|contact.add") == 0
    assert len(bitrix_fake.leads_of(linked)) == 2


def test_a_linked_record_deleted_in_bitrix_is_replaced_once(bitrix, bitrix_fake):
    result = bitrix.deliver(delivery(contact(record_id="999999", email=None, phone=None, contact_id=7)))

    (record,) = bitrix_fake.contacts_for(7)
    assert result.contact_record_id == record["ID"]


def test_without_leads_only_the_contact_is_written(bitrix_fake, build_destination):
    bitrix = build_destination("bitrix24", webhook_url=bitrix_fake.webhook_url, create_leads=False)

    result = bitrix.deliver(delivery())

    assert result.interaction_record_id is None and bitrix_fake.leads == {}
    assert len(bitrix_fake.contacts_for(1)) == 1


def test_the_leaky_bucket_limit_is_transient_with_a_short_delay(bitrix, bitrix_fake):
    bitrix_fake.faults.script(Fault.rate_limit())

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery())

    assert (caught.value.reason, caught.value.status, caught.value.retry_after) == ("rate_limit", 503, 1.0)


def test_the_operating_limit_honours_retry_after(bitrix, bitrix_fake):
    bitrix_fake.faults.script(Fault.respond(429, {"error": "OPERATION_TIME_LIMIT", "error_description":
                                                  "Method is blocked due to operation time limit."},
                                            headers={"Retry-After": "42"}))

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 42)


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.timeout(), Fault.after_write(then="drop")],
                         ids=["5xx", "timeout", "dropped"])
def test_an_unavailable_crm_is_a_transient_failure(bitrix, bitrix_fake, fault):
    bitrix_fake.faults.script(fault)

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"


def test_a_web_page_instead_of_the_rest_answer_is_a_transient_failure(bitrix, bitrix_fake):
    bitrix_fake.faults.script(portal_page())

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("crm_unavailable", 200)


def test_a_wrong_webhook_code_is_a_permanent_auth_failure_that_does_not_leak_the_code(bitrix_fake,
                                                                                      build_destination):
    bitrix = build_destination("bitrix24", webhook_url=f"{bitrix_fake.url}/rest/1/wrongcode/")

    with pytest.raises(PermanentError) as caught:
        bitrix.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("auth", 401)
    assert "wrongcode" not in str(caught.value)


def test_an_invalid_email_is_a_permanent_validation_failure(bitrix, bitrix_fake):
    with pytest.raises(PermanentError) as caught:
        bitrix.deliver(delivery(contact(email="not-an-email")))

    assert caught.value.reason == "validation"
    assert bitrix_fake.contacts == {}


def test_a_webhook_url_without_the_rest_path_is_rejected(build_destination):
    with pytest.raises(ValueError, match="incoming webhook URL"):
        build_destination("bitrix24", webhook_url="https://portal.bitrix24.ru/")
