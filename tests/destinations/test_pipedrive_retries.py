"""Pipedrive retries: after a lost response or despite search lag, a retry writes no person, lead or note twice.
"""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import TransientError
from tests.destinations.builders import deliver_until_done, delivery, lead
from tests.fakes.base import Fault


@pytest.mark.parametrize("step", ["POST /api/v2/persons", "POST /api/v1/leads", "POST /api/v1/notes"])
@pytest.mark.parametrize("then", ["500", "drop"])
def test_a_retry_after_a_lost_response_writes_nothing_twice(pipedrive, pipedrive_fake, step, then):
    pipedrive_fake.faults.script(Fault.after_write(match=f"^{step}$", then=then))

    with pytest.raises(TransientError):
        pipedrive.deliver(delivery(interaction=lead(), key="k-1"))
    deliver_until_done(pipedrive, delivery(interaction=lead(), key="k-1", attempt=2))

    (person,) = pipedrive_fake.persons_with(email="ivan@example.com")
    assert len(pipedrive_fake.leads_of(person["id"])) == 1
    assert len(pipedrive_fake.notes_of(person["id"])) == 1


def test_a_retry_finds_its_lead_beyond_the_first_page_of_the_persons_leads(pipedrive, pipedrive_fake):
    person = pipedrive_fake.seed_person("Ivan", emails=["ivan@example.com"])
    pipedrive_fake.seed_leads(person, 600)   # more than one page of 500
    pipedrive_fake.faults.script(Fault.after_write(match="^POST /api/v1/leads$"))

    with pytest.raises(TransientError):
        pipedrive.deliver(delivery(interaction=lead(), key="k-1"))
    pipedrive.deliver(delivery(interaction=lead(), key="k-1", attempt=2))

    assert [x["origin_id"] for x in pipedrive_fake.leads_of(person) if x["origin_id"]] == ["k-1"]


def test_search_lag_does_not_duplicate_the_person(pipedrive, pipedrive_fake):
    pipedrive_fake.faults.search_lag_ms = 60_000
    pipedrive_fake.faults.script(Fault.after_write(match="^POST /api/v2/persons$"))

    with pytest.raises(TransientError):
        pipedrive.deliver(delivery(key="k-1"))
    pipedrive.deliver(delivery(key="k-1", attempt=2))
    pipedrive.deliver(delivery(key="k-2"))   # the next conversation, attempt 1, with no link stored yet

    (person,) = pipedrive_fake.persons.values()
    assert len(pipedrive_fake.notes_of(person["id"])) == 2
