"""The delivery engine, against the fake HubSpot, leaves one log line per attempt and feeds the delivery metrics."""
from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from crm_sync.destinations.base import MAX_ERROR_MESSAGE
from tests.contacts.provider_requests import jivo_chat
from tests.delivery.conftest import fakes, hubspot_fake, hubspot_settings, make_harness, make_harness_on  # noqa: F401
from tests.fakes.faults import Fault

NAME = "hubspot-main"
UPSERT = "batch/upsert"


@pytest.fixture
def harness(make_harness, hubspot_fake):  # noqa: F811
    return make_harness({NAME: hubspot_settings(hubspot_fake, max_attempts=3, retry_initial_seconds=10,
                                                circuit_failures=1, circuit_cooldown_seconds=60)})


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def attempts(outcome: str, reason: str = "") -> float:
    return value("crm_ingest_delivery_attempts_total", destination=NAME, outcome=outcome, reason=reason)


def delivery_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "crm_sync.delivery"]


def test_a_failed_then_successful_delivery_is_one_line_and_one_count_per_attempt(harness, hubspot_fake, log_lines):
    read = log_lines("json")
    before = {"failed": attempts("failed", "crm_unavailable"), "succeeded": attempts("succeeded"),
              "finished": value("crm_ingest_deliveries_total", destination=NAME, outcome="succeeded"),
              "opened": value("crm_ingest_circuit_opens_total", destination=NAME),
              "calls": value("crm_ingest_crm_request_seconds_count", destination=NAME, status="5xx")}
    hubspot_fake.faults.script(Fault.server_error(UPSERT))
    harness.receive(jivo_chat(301, name="Ivan Petrov", phone="+79161230101"))

    harness.drain_until_settled()

    lines = delivery_lines(read())
    assert [(line["outcome"], line["attempt"]) for line in lines] == [("failed", 1), ("succeeded", 2)]
    assert lines[0]["reason"] == "crm_unavailable" and lines[0]["destination"] == NAME
    assert lines[0]["delivery_id"] == lines[1]["delivery_id"]
    assert attempts("failed", "crm_unavailable") - before["failed"] == 1
    assert attempts("succeeded") - before["succeeded"] == 1
    assert value("crm_ingest_deliveries_total", destination=NAME, outcome="succeeded") - before["finished"] == 1
    assert value("crm_ingest_circuit_opens_total", destination=NAME) - before["opened"] == 1
    assert value("crm_ingest_crm_request_seconds_count", destination=NAME, status="5xx") - before["calls"] == 1


def test_the_crms_rate_limit_answer_is_counted_as_a_wait(harness, hubspot_fake):
    before = value("crm_ingest_rate_limit_waits_total", destination=NAME, cause="crm")
    hubspot_fake.faults.script(Fault.rate_limit(retry_after=120, match=UPSERT))
    harness.receive(jivo_chat(302, name="Olga", phone="+79161230102"))

    harness.drain_until_settled()

    assert value("crm_ingest_rate_limit_waits_total", destination=NAME, cause="crm") - before == 1
    assert value("crm_ingest_rate_limit_wait_seconds_total", destination=NAME, cause="crm") >= 120


def test_a_crms_error_text_of_megabytes_is_logged_as_long_as_it_is_stored(harness, hubspot_fake, log_lines):
    read = log_lines("json")
    hubspot_fake.faults.script(Fault.respond(400, {"status": "error", "category": "VALIDATION_ERROR",
                                                   "message": "Property values were not valid: " + "v" * 200_000},
                                             UPSERT))
    harness.receive(jivo_chat(303, name="Long", phone="+79161230103"))

    harness.drain(NAME)

    [line] = delivery_lines(read())
    assert line["outcome"] == "dead" and len(line["message"]) <= len("delivery dead: ") + MAX_ERROR_MESSAGE
