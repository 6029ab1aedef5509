"""Pipedrive failures: rate limits and an unavailable CRM are transient (with the delay to wait); a wrong token,
a rejected write or a plan cap are permanent.
"""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import PermanentError, TransientError
from tests.destinations.builders import delivery, lead
from tests.fakes.base import Fault


def test_rate_limit_is_transient_with_the_reset_delay(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.rate_limit(retry_after=3))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 3)


def test_rate_limit_with_retry_after_uses_it(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(429, {"success": False, "error": "Request over limit"},
                                               headers={"Retry-After": "9"}))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", 9)


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.timeout(), Fault.after_write(then="drop")],
                         ids=["5xx", "timeout", "dropped"])
def test_an_unavailable_crm_is_a_transient_failure(pipedrive, pipedrive_fake, fault):
    pipedrive_fake.faults.script(fault)

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"


def test_a_wrong_token_is_a_permanent_auth_failure(pipedrive_fake, build_destination):
    pipedrive = build_destination("pipedrive", base_url=pipedrive_fake.url, api_token="wrong")

    with pytest.raises(PermanentError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.status) == ("auth", 401)


def test_a_rejected_write_is_a_permanent_validation_failure(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(400, {"success": False, "error": "Validation failed: name: too long"},
                                               match="POST /api/v2/persons"))

    with pytest.raises(PermanentError) as caught:
        pipedrive.deliver(delivery())

    assert caught.value.reason == "validation" and "name: too long" in caught.value.message


def test_a_plan_cap_is_a_permanent_plan_limit_failure(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(403, {
        "success": False, "error": "Couldn't add the lead. Open leads limit reached.",
        "code": "feature_capping_leads_limit"}, match="POST /api/v1/leads"))

    with pytest.raises(PermanentError) as caught:
        pipedrive.deliver(delivery(interaction=lead()))

    assert caught.value.reason == "plan_limit"
