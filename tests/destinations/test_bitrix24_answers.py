"""Bitrix24 answers with something else than the method's `result`: an add without the new id is not confirmed (the
retry finds it by ORIGIN_ID), a list of the wrong shape is no "nothing found", and the webhook code is never quoted.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from crm_sync.destinations.base import DeliveryError, PermanentError, TransientError
from tests.destinations.builders import contact, delivery, retry_after_a_lost_write
from tests.fakes.base import Fault
from tests.fakes.bitrix24 import CODE


@pytest.mark.parametrize("result", [None, False, 0, {"ID": 5}, ""], ids=["null", "false", "zero", "object", "empty"])
def test_a_contact_added_without_its_id_is_an_unconfirmed_write(bitrix, bitrix_fake, result):
    bitrix_fake.faults.script(Fault.respond(200, {"result": result}, "crm.contact.add"))

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery())

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)
    assert caught.value.message == "bitrix24 crm.contact.add: answered without the new record's id"
    assert bitrix_fake.leads == {}


def test_a_contact_added_without_its_id_links_no_record_even_without_leads(bitrix_fake, build_destination):
    bitrix = build_destination("bitrix24", webhook_url=bitrix_fake.webhook_url, create_leads=False)
    bitrix_fake.faults.script(Fault.respond(200, {"result": None}, "crm.contact.add"))

    with pytest.raises(TransientError):
        bitrix.deliver(delivery())


def test_an_empty_error_beside_a_result_is_no_error(bitrix, bitrix_fake):
    def with_an_empty_error(answer):
        answer.body = {**answer.body, "error": ""}
        return answer
    bitrix_fake.faults.script(Fault.rewrite_answer("crm.contact.add", with_an_empty_error))

    result = bitrix.deliver(delivery())

    assert [result.contact_record_id] == [str(record_id) for record_id in bitrix_fake.contacts]


def test_a_lead_added_without_its_id_is_an_unconfirmed_write(bitrix, bitrix_fake):
    bitrix_fake.faults.script(Fault.respond(200, {"result": None}, "crm.lead.add"))

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery())

    assert (caught.value.reason, caught.value.outcome_unknown) == ("crm_answer", True)


@pytest.mark.parametrize("body", [{"result": None}, {"result": {}}, {"time": {}}],
                         ids=["result-null", "result-object", "without-result"])
def test_a_retried_lead_list_answered_with_a_wrong_shape_writes_no_second_lead(bitrix, bitrix_fake, body):
    error = retry_after_a_lost_write(bitrix, bitrix_fake, "crm.lead.add", "crm.lead.list", body)

    assert error.reason == "crm_answer" and len(bitrix_fake.leads) == 1


@pytest.mark.parametrize("body", [{"result": {"x": 1}}, {"result": [{}]}], ids=["object", "row-without-id"])
def test_a_contact_list_answered_with_a_wrong_shape_creates_no_contact(bitrix, bitrix_fake, body):
    bitrix_fake.faults.script(Fault.respond(200, body, "crm.contact.list"))

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery())

    assert caught.value.reason == "crm_answer" and bitrix_fake.contacts == {}


@pytest.mark.parametrize("result", [{"CONTACT": ["abc"]}, {"CONTACT": "1001"}, [1001]],
                         ids=["not-numbers", "not-a-list", "bare-list"])
def test_duplicates_answered_other_than_as_contact_ids_are_a_transient_answer_error(bitrix, bitrix_fake, result):
    bitrix_fake.faults.script(Fault.respond(200, {"result": result}, "crm.duplicate.findbycomm"))

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery())

    assert caught.value.reason == "crm_answer" and bitrix_fake.contacts == {}


@pytest.mark.parametrize("result", [[], None], ids=["empty-list", "null"])
def test_a_linked_contact_read_answered_with_a_wrong_shape_is_not_taken_for_deleted(bitrix, bitrix_fake, result):
    record = bitrix_fake.seed_contact(NAME="Ivan", ORIGINATOR_ID="crm-ingest", ORIGIN_ID="contact:1")
    bitrix_fake.faults.script(Fault.respond(200, {"result": result}, "crm.contact.get"))

    with pytest.raises(TransientError) as caught:
        bitrix.deliver(delivery(replace(contact(), record_id=str(record))))

    assert caught.value.reason == "crm_answer" and list(bitrix_fake.contacts) == [record]


@pytest.mark.parametrize(("status", "error"), [(401, PermanentError), (502, TransientError)])
def test_an_error_page_that_echoes_the_webhook_url_is_quoted_with_the_code_masked(bitrix, bitrix_fake, status, error):
    bitrix_fake.faults.script(Fault.respond(status, f"<html>login at /rest/1/{CODE}/crm.contact.add</html>",
                                            "crm.contact.add", content_type="text/html"))

    with pytest.raises(DeliveryError) as caught:
        bitrix.deliver(delivery())

    assert isinstance(caught.value, error)
    assert CODE not in str(caught.value) and CODE not in caught.value.message
    assert "login at /rest/1/<secret>/crm.contact.add" in caught.value.message


def test_a_refusal_whose_description_echoes_the_webhook_code_is_quoted_with_the_code_masked(bitrix, bitrix_fake):
    bitrix_fake.faults.script(Fault.respond(400, {"error": "", "error_description": f"bad call to /rest/1/{CODE}/"},
                                            "crm.contact.add"))

    with pytest.raises(PermanentError) as caught:
        bitrix.deliver(delivery())

    assert CODE not in caught.value.message and "/rest/1/<secret>/" in caught.value.message


def test_an_error_answered_200_that_echoes_the_webhook_code_is_quoted_with_the_code_masked(bitrix, bitrix_fake):
    bitrix_fake.faults.script(Fault.respond(200, {"error": "SOMETHING_NEW", "error_description": f"see {CODE}"},
                                            "crm.contact.add"))

    with pytest.raises(PermanentError) as caught:
        bitrix.deliver(delivery())

    assert CODE not in caught.value.message and "see <secret>" in caught.value.message
