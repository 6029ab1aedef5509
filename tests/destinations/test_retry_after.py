"""A CRM's requested wait is one the engine can schedule: an absurdly long one is capped at a day, one that is no
finite, non-negative number is ignored (the engine's own backoff applies)."""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import MAX_RETRY_AFTER_SECONDS, TransientError
from tests.destinations.builders import delivery
from tests.fakes.base import Fault

SLOW_DOWN = {"error": "slow down"}


def test_a_retry_after_of_more_than_a_day_is_capped_at_a_day(webhook, receiver):
    receiver.faults.script(Fault.respond(429, SLOW_DOWN, headers={"Retry-After": "1000000000000"}))

    with pytest.raises(TransientError) as caught:
        webhook.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", MAX_RETRY_AFTER_SECONDS)


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "-inf"])
def test_a_retry_after_that_is_no_finite_non_negative_number_is_ignored(webhook, receiver, value):
    receiver.faults.script(Fault.respond(429, SLOW_DOWN, headers={"Retry-After": value}))

    with pytest.raises(TransientError) as caught:
        webhook.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", None)


def test_a_rate_limit_reset_of_more_than_a_day_in_a_vendor_header_is_capped_at_a_day(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.script(Fault.respond(429, {"success": False, "error": "Request over limit"},
                                               headers={"x-ratelimit-reset": "99999999999999"}))

    with pytest.raises(TransientError) as caught:
        pipedrive.deliver(delivery())

    assert (caught.value.reason, caught.value.retry_after) == ("rate_limit", MAX_RETRY_AFTER_SECONDS)
