"""Dead letters: the admin API and the CLI list deliveries with their reasons, show one, and retry after a fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crm_sync.schema import DeliveryStatus
from ingest.db import migrate
from ingest.runtime import Runtime
from tests.contacts.provider_requests import PROVIDER_SOURCES, jivo_chat
from tests.delivery.conftest import Harness, hubspot_settings, write_config
from tests.fakes.faults import Fault

NAME = "hubspot-main"
AUTH_FAILURE = Fault.respond(401, {"status": "error", "message": "Authentication credentials not found.",
                                   "category": "INVALID_AUTHENTICATION"}, match="batch/upsert")


def with_dead_and_succeeded(harness: Harness, fake) -> tuple[int, int]:
    """One delivery dead for a revoked token, one succeeded afterwards; (dead id, succeeded id)."""
    harness.receive(jivo_chat(701, phone="+79161230701"))
    fake.faults.script(AUTH_FAILURE)
    harness.drain(NAME)
    harness.receive(jivo_chat(702, phone="+79161230702"))
    harness.drain(NAME)
    dead, succeeded = harness.deliveries()
    assert (dead.status, succeeded.status) == (DeliveryStatus.DEAD, DeliveryStatus.SUCCEEDED)
    return dead.id, succeeded.id


@pytest.fixture
def harness(make_harness, hubspot_fake):
    return make_harness({NAME: hubspot_settings(hubspot_fake)})


def test_deliveries_are_listed_with_their_reasons_and_filtered(harness, hubspot_fake, admin_headers):
    dead, succeeded = with_dead_and_succeeded(harness, hubspot_fake)

    listed = harness.client.get("/api/deliveries", headers=admin_headers).json["deliveries"]
    only_dead = harness.client.get("/api/deliveries?status=dead&destination=hubspot-main",
                                   headers=admin_headers).json["deliveries"]

    assert [row["id"] for row in listed] == [succeeded, dead]
    assert [(row["id"], row["error_class"], row["last_status"]) for row in only_dead] == [(dead, "auth", 401)]
    assert only_dead[0]["idempotency_key"] == f"{NAME}:i1:r1"
    assert "Authentication credentials" in only_dead[0]["error_message"]


def test_one_delivery_shows_its_crm_record_interaction_and_events(harness, hubspot_fake, admin_headers):
    _, succeeded = with_dead_and_succeeded(harness, hubspot_fake)

    shown = harness.client.get(f"/api/deliveries/{succeeded}", headers=admin_headers).json

    assert shown["crm"]["url"].startswith("https://app.hubspot.com/contacts/4242/record/0-1/")
    assert shown["interaction"]["provider"] == "jivo" and shown["interaction"]["conversation_id"]
    assert shown["event_ids"] == [2]
    assert harness.client.get("/api/deliveries/999", headers=admin_headers).status_code == 404


def test_a_dead_delivery_is_retried_and_succeeds_once_the_fault_is_gone(harness, hubspot_fake, admin_headers):
    dead, succeeded = with_dead_and_succeeded(harness, hubspot_fake)

    response = harness.client.post(f"/api/deliveries/{dead}/retry", headers=admin_headers)
    not_retriable = harness.client.post(f"/api/deliveries/{succeeded}/retry", headers=admin_headers)
    harness.drain(NAME)

    assert response.status_code == 202 and response.json == {"retried": [dead]}
    assert (not_retriable.status_code, not_retriable.json["error"]) == (409, "not_retriable")
    row = harness.delivery(dead)
    assert (row.status, row.attempts, row.last_error_class) == (DeliveryStatus.SUCCEEDED, 2, None)


def test_retry_by_filter_counts_first_with_a_dry_run(harness, hubspot_fake, admin_headers):
    dead, _ = with_dead_and_succeeded(harness, hubspot_fake)

    dry = harness.client.post("/api/deliveries/retry", json={"status": "dead"}, headers=admin_headers)
    assert dry.json == {"dry_run": True, "matching": 1, "retried": 0}
    assert harness.delivery(dead).status == DeliveryStatus.DEAD
    done = harness.client.post("/api/deliveries/retry", json={"status": "dead", "destination": NAME,
                                                               "dry_run": False}, headers=admin_headers)
    harness.drain(NAME)

    assert done.json == {"dry_run": False, "matching": 1, "retried": 1}
    assert harness.statuses() == {DeliveryStatus.SUCCEEDED: 2}


def test_retry_by_filter_refuses_what_cannot_be_retried(harness, admin_headers):
    for body in ({"status": "succeeded"}, {"destination": NAME}, {"status": "nonsense"}):
        response = harness.client.post("/api/deliveries/retry", json=body, headers=admin_headers)
        assert (response.status_code, response.json["error"]) == (400, "bad_filter"), body


def test_retry_by_filter_names_the_status_given_and_those_it_accepts(harness, admin_headers):
    response = harness.client.post("/api/deliveries/retry", json={"status": "pending"}, headers=admin_headers)

    assert (response.status_code, response.json["error"]) == (400, "bad_filter")
    assert "status pending cannot be retried" in response.json["message"]
    assert "failed or dead" in response.json["message"]


@pytest.fixture
def unconfigured(harness, hubspot_fake, database_url, make_harness_on) -> tuple[Harness, int]:
    """The same database after NAME was removed from the configuration, and its dead delivery's id."""
    dead, _ = with_dead_and_succeeded(harness, hubspot_fake)
    return make_harness_on(database_url, {}), dead


def test_a_delivery_of_a_destination_no_longer_configured_is_not_retried(unconfigured, admin_headers):
    harness, dead = unconfigured

    response = harness.client.post(f"/api/deliveries/{dead}/retry", headers=admin_headers)

    assert (response.status_code, response.json["error"]) == (409, "unknown_destination")
    assert f"destination '{NAME}' is not configured" in response.json["message"]
    assert harness.delivery(dead).status == DeliveryStatus.DEAD


def test_retry_by_filter_naming_a_destination_no_longer_configured_is_refused(unconfigured, admin_headers):
    harness, dead = unconfigured
    body = {"status": "dead", "destination": NAME, "dry_run": False}

    response = harness.client.post("/api/deliveries/retry", json=body, headers=admin_headers)

    assert (response.status_code, response.json["error"]) == (409, "unknown_destination")
    assert harness.delivery(dead).status == DeliveryStatus.DEAD


def test_retry_by_status_leaves_deliveries_of_destinations_no_longer_configured_alone(unconfigured, admin_headers):
    harness, dead = unconfigured

    response = harness.client.post("/api/deliveries/retry", json={"status": "dead", "dry_run": False},
                                   headers=admin_headers)

    assert (response.status_code, response.json) == (200, {"dry_run": False, "matching": 0, "retried": 0})
    assert harness.delivery(dead).status == DeliveryStatus.DEAD


def test_the_deliveries_api_needs_the_admin_token(harness):
    assert harness.client.get("/api/deliveries").status_code == 401
    assert harness.client.post("/api/deliveries/1/retry", headers={"Authorization": "Bearer x"}).status_code == 401


# --- the CLI, as a user runs it ---------------------------------------------------------------------------------

def cli(workdir, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", "CRM_INGEST_ADMIN_TOKEN")}
    env["CRM_INGEST_CONFIG"] = str(workdir / "crm-ingest.toml")
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def cli_harness(make_settings, hubspot_fake, tmp_path):
    """A harness on a SQLite file the CLI's config names too (on SQLite only: it is the CLI under test)."""
    url = f"sqlite:///{tmp_path}/cli.db"
    migrate(url)
    runtime = Runtime(make_settings(url, sources=PROVIDER_SOURCES, destinations={NAME: hubspot_settings(hubspot_fake)}))
    yield Harness(runtime)
    runtime.close()


def test_the_cli_lists_shows_and_retries_dead_deliveries(cli_harness, hubspot_fake, tmp_path):
    harness = cli_harness
    write_config(tmp_path / "crm-ingest.toml", harness.runtime.settings)
    dead, _ = with_dead_and_succeeded(harness, hubspot_fake)

    listed = cli(tmp_path, "deliveries", "list", "--status", "dead", "--json")
    shown = cli(tmp_path, "deliveries", "show", str(dead))
    dry = cli(tmp_path, "deliveries", "retry", "--status", "dead", "--dry-run")
    assert harness.delivery(dead).status == DeliveryStatus.DEAD
    retried = cli(tmp_path, "deliveries", "retry", "--status", "dead", "--destination", NAME)
    harness.drain(NAME)

    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [dead], listed.stderr
    assert json.loads(shown.stdout)["error_class"] == "auth"
    assert dry.stdout.strip() == "would retry 1 of 1 delivery(ies)"
    assert retried.stdout.strip() == "retrying 1 of 1 delivery(ies)"
    assert harness.delivery(dead).status == DeliveryStatus.SUCCEEDED


def test_deliveries_are_paged_newest_first_with_next_before(harness, hubspot_fake, admin_headers):
    dead, succeeded = with_dead_and_succeeded(harness, hubspot_fake)

    first = harness.client.get("/api/deliveries?limit=1", headers=admin_headers).json
    rest = harness.client.get(f"/api/deliveries?limit=1&before={first['next_before']}", headers=admin_headers).json

    assert ([row["id"] for row in first["deliveries"]], first["next_before"]) == ([succeeded], succeeded)
    assert ([row["id"] for row in rest["deliveries"]], rest["next_before"]) == ([dead], None)


def test_the_cli_pages_deliveries_with_before(cli_harness, hubspot_fake, tmp_path):
    write_config(tmp_path / "crm-ingest.toml", cli_harness.runtime.settings)
    dead, succeeded = with_dead_and_succeeded(cli_harness, hubspot_fake)

    first = cli(tmp_path, "deliveries", "list", "--limit", "1", "--json")
    rest = cli(tmp_path, "deliveries", "list", "--limit", "1", "--json", "--before", str(succeeded))

    assert [json.loads(line)["id"] for line in first.stdout.splitlines()] == [succeeded]
    assert f"--before {succeeded}" in first.stderr
    assert [json.loads(line)["id"] for line in rest.stdout.splitlines()] == [dead]


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_the_cli_refuses_to_retry_a_delivery_that_is_not_failed_or_dead(cli_harness, hubspot_fake, tmp_path,
                                                                         dry_run):
    write_config(tmp_path / "crm-ingest.toml", cli_harness.runtime.settings)
    _, succeeded = with_dead_and_succeeded(cli_harness, hubspot_fake)

    result = cli(tmp_path, "deliveries", "retry", "--id", str(succeeded), *dry_run)

    assert result.returncode == 1 and result.stdout == ""
    assert f"delivery {succeeded} is succeeded; only failed and dead" in result.stderr


@pytest.mark.parametrize("how", [("--id", "{dead}"), ("--status", "dead", "--destination", NAME)],
                         ids=["by-id", "by-filter"])
def test_the_cli_refuses_to_retry_deliveries_of_a_destination_no_longer_configured(cli_harness, hubspot_fake,
                                                                                  make_settings, tmp_path, how):
    dead, _ = with_dead_and_succeeded(cli_harness, hubspot_fake)
    settings = make_settings(cli_harness.runtime.settings.database_url, sources=PROVIDER_SOURCES, destinations={})
    write_config(tmp_path / "crm-ingest.toml", settings)

    result = cli(tmp_path, "deliveries", "retry", *[arg.format(dead=dead) for arg in how])

    assert result.returncode == 1 and result.stdout == ""
    assert f"destination '{NAME}' is not configured" in result.stderr
    assert cli_harness.delivery(dead).status == DeliveryStatus.DEAD
