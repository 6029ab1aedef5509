"""HubSpot retries: whatever fails between the writes (a lost response, search lag, a partial read), a retry writes
no contact and no note twice.
"""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import TransientError
from tests.destinations.builders import deliver_until_done, delivery
from tests.fakes.base import Fault


@pytest.mark.parametrize("step", ["contacts/batch/upsert", "notes/batch/create"])
@pytest.mark.parametrize("then", ["500", "drop"])
def test_a_retry_after_a_lost_response_writes_nothing_twice(hubspot, hubspot_fake, step, then):
    hubspot_fake.faults.script(Fault.after_write(match=step, then=then))

    with pytest.raises(TransientError):
        hubspot.deliver(delivery(key="k-1"))
    deliver_until_done(hubspot, delivery(key="k-1", attempt=2))

    (record,) = hubspot_fake.records_for(1)
    assert len(hubspot_fake.notes_of(record["id"])) == 1


def test_search_lag_does_not_duplicate_the_contact_or_the_note(hubspot, hubspot_fake):
    hubspot_fake.faults.search_lag_ms = 60_000
    hubspot_fake.faults.script(Fault.after_write(match="notes/batch/create"))

    with pytest.raises(TransientError):
        hubspot.deliver(delivery(key="k-1"))
    hubspot.deliver(delivery(key="k-1", attempt=2))
    hubspot.deliver(delivery(key="k-2"))   # another conversation of the same person, our link not yet stored

    (record,) = hubspot_fake.records_for(1)
    assert len(hubspot_fake.notes_of(record["id"])) == 2


def test_a_retry_after_a_lost_contact_write_reads_it_back_and_writes_nothing_more(hubspot, hubspot_fake):
    hubspot_fake.faults.script(Fault.after_write(match="contacts/batch/upsert", then="drop"))

    with pytest.raises(TransientError):
        hubspot.deliver(delivery(key="k-1"))
    result = hubspot.deliver(delivery(key="k-1", attempt=2))

    (record,) = hubspot_fake.records_for(1)
    assert result.contact_record_id == record["id"]
    assert hubspot_fake.count_calls("contacts/batch/upsert") == 1


def test_a_contact_read_that_misses_records_for_another_reason_than_absence_writes_nothing(hubspot, hubspot_fake):
    record = hubspot_fake.seed_contact(crm_ingest_contact_id="1", email="ivan@example.com", firstname="Ivan (VIP)")
    hubspot_fake.faults.script(Fault.respond(207, {"status": "COMPLETE", "results": [], "numErrors": 1, "errors": [
        {"status": "error", "category": "INTERNAL_ERROR", "message": "Could not read some objects"}]},
        match="contacts/batch/read"))

    with pytest.raises(TransientError) as caught:
        hubspot.deliver(delivery())

    assert caught.value.reason == "crm_unavailable"
    assert hubspot_fake.count_calls("contacts/batch/upsert|PATCH") == 0
    assert hubspot_fake.contacts[record]["properties"]["firstname"] == "Ivan (VIP)"
