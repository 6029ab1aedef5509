"""HubSpot failures: rate limits, migrations and an unavailable CRM are transient (with the delay to wait); a
wrong token, an invalid value or a misconfigured id property are permanent.
"""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from tests.destinations.builders import contact, delivery
from tests.fakes.base import Fault
from tests.fakes.hubspot import migration_in_progress


def test_rate_limit_with_retry_after_is_transient_with_that_delay(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.rate_limit(retry_after=7))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 7)


def test_rate_limit_without_retry_after_backs_off_by_the_policy_name(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.rate_limit(retry_after=None))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert caught.value.retry_after == 10


def test_a_migration_in_progress_makes_the_destination_wait_for_its_retry_after(hubspot, hubspot_fake):
    hubspot_fake.faults.script(migration_in_progress(retry_after=7200))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert (caught.value.reason, caught.value.status, caught.value.retry_after) == ("crm_migrating", 477, 7200)
    assert caught.value.asks_to_wait


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.timeout(), Fault.after_write(then="drop")],
                         ids=["5xx", "timeout", "dropped"])
def test_an_unavailable_crm_is_a_transient_failure(hubspot, hubspot_fake, fault):
    hubspot_fake.faults.script(fault)

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"


def test_latency_past_the_client_timeout_is_a_transient_failure(hubspot, hubspot_fake):
    hubspot_fake.faults.latency_ms = 2_000

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert caught.value.reason == "crm_unavailable" and "timed out" in caught.value.message


def test_a_wrong_token_is_a_permanent_auth_failure(hubspot_fake, build_destination):
    hubspot = build_destination("hubspot", base_url=hubspot_fake.url, token="wrong")

    with pytest.raises(PermanentError) as caught:
        hubspot.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("auth", 401)


def test_an_invalid_email_is_a_permanent_validation_failure(hubspot, hubspot_fake):
    with pytest.raises(PermanentError) as caught:
        hubspot.deliver(delivery(contact(email="not-an-email")))

    assert caught.value.reason == "validation"
    assert hubspot_fake.contacts == {}


def test_an_id_property_without_unique_values_says_how_to_fix_it(hubspot, hubspot_fake):
    hubspot_fake.unique_properties = set()

    with pytest.raises(PermanentError, match="unique values"):
        hubspot.deliver(delivery())


def test_a_note_hubspot_did_not_create_says_what_hubspot_answered(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.respond(207, {"status": "COMPLETE", "results": [], "errors": [
        {"status": "error", "category": "VALIDATION_ERROR", "message": "hs_note_body exceeds 65536 characters"}]},
        "notes/batch/create"))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert "not confirmed" in caught.value.message
    assert "HubSpot said: VALIDATION_ERROR: hs_note_body exceeds 65536 characters" in caught.value.message
