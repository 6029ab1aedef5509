"""The operator commands refuse what they cannot do: out-of-range times and ids are usage errors, a replay or a
retry of nothing fails, dry runs count what a real run would do, and long lists are paged with --before."""
from __future__ import annotations

import base64
import json
import os

import pytest

from tests.test_cli import cli, receive_requests, store_requests, workdir  # noqa: F401 (workdir: fixture)

HUGE_ID = "99999999999999999999999"


@pytest.mark.parametrize("command", [
    ("events", "list", "--since", "999999d"),
    ("replay", "--status", "dead", "--since", "99999999999d"),
    ("purge", "--older-than", "999999d", "--dry-run"),
])
def test_a_time_too_far_back_is_a_usage_error(workdir, command):
    result = cli(workdir, *command)
    assert result.returncode == 2, result.stderr
    assert "out of range" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [
    ("events", "show", HUGE_ID), ("deliveries", "show", HUGE_ID), ("replay", "--event", HUGE_ID),
    ("deliveries", "retry", "--id", HUGE_ID),
])
def test_an_id_beyond_64_bits_is_a_usage_error(workdir, command):
    result = cli(workdir, *command)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [("events", "list"), ("deliveries", "list")])
@pytest.mark.parametrize("limit", ["0", "-1", "1001"])
def test_a_limit_outside_1_to_1000_is_a_usage_error(workdir, command, limit):
    result = cli(workdir, *command, "--limit", limit)
    assert result.returncode == 2
    assert "1<=x<=1000" in result.stderr


def test_events_list_pages_with_before(workdir):
    store_requests(workdir, b'{"n": 1}', b'{"n": 2}', b'{"n": 3}')
    first = cli(workdir, "events", "list", "--limit", "2", "--json")
    rest = cli(workdir, "events", "list", "--limit", "2", "--json", "--before", "2")
    assert [json.loads(line)["id"] for line in first.stdout.splitlines()] == [3, 2]
    assert "--before 2" in first.stderr
    assert [json.loads(line)["id"] for line in rest.stdout.splitlines()] == [1]
    assert rest.stderr == ""


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_replaying_an_absent_event_fails(workdir, dry_run):
    result = cli(workdir, "replay", "--event", "424242", *dry_run)
    assert result.returncode == 1
    assert "no event 424242" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_replaying_an_event_not_finished_fails_saying_which_can_be(workdir, dry_run):
    receive_requests(workdir, b'{"n": 1}')
    result = cli(workdir, "replay", "--event", "1", *dry_run)
    assert result.returncode == 1
    assert "event 1 is received" in result.stderr and "processed, ignored, dead" in result.stderr


def test_replaying_a_finished_event_in_a_dry_run_says_it_would(workdir):
    store_requests(workdir, b"broken")
    result = cli(workdir, "replay", "--event", "1", "--dry-run")
    assert (result.returncode, result.stdout.strip()) == (0, "would replay event 1")


def test_a_dry_run_over_events_not_finished_counts_none_of_them(workdir):
    receive_requests(workdir, b'{"n": 1}', b'{"n": 2}')
    dry = cli(workdir, "replay", "--status", "received", "--dry-run")
    real = cli(workdir, "replay", "--status", "received")
    assert dry.stdout.startswith("would replay 0 of 2 event(s) (2 not finished: only processed, ignored, dead")
    assert real.stdout.startswith("replayed 0 of 2 event(s)")


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_retrying_an_absent_delivery_fails(workdir, dry_run):
    result = cli(workdir, "deliveries", "retry", "--id", "424242", *dry_run)
    assert result.returncode == 1
    assert "no delivery 424242" in result.stderr and result.stdout == ""


def test_events_list_prints_a_header_naming_its_columns(workdir):
    store_requests(workdir, b'{"email": "a@example.com"}', b"broken")
    header, dead, processed = cli(workdir, "events", "list").stdout.splitlines()
    assert header.split() == ["ID", "RECEIVED", "AT", "(UTC)", "SOURCE", "STATUS", "TIMES", "REASON"]
    assert processed.split()[0] == "1" and processed.split()[-2:] == ["processed", "1"]  # TIMES: sent once
    assert dead.index("parse_error") == header.index("REASON")  # the reason column is under its name


def test_events_list_matching_nothing_says_so_on_stderr(workdir):
    result = cli(workdir, "events", "list", "--status", "dead")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "no events match\n")


def test_deliveries_list_prints_a_header_naming_its_columns(workdir):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    config = workdir / "crm-ingest.toml"
    config.write_text(config.read_text() + f'[destinations.hook]\nkind = "webhook"\nurl = "https://example.com/h"\n'
                                           f'secret = "{secret}"\n')
    receive_requests(workdir, b'{"email": "a@example.com", "kind": "lead"}')
    _process_planning_deliveries(workdir, 1)
    header, *rows = cli(workdir, "deliveries", "list").stdout.splitlines()
    assert header.split() == ["ID", "UPDATED", "AT", "(UTC)", "DESTINATION", "STATUS", "ATTEMPTS", "IDEMPOTENCY",
                              "KEY", "REASON"]
    assert rows and all(row.split()[2:4] == ["hook", "pending"] for row in rows), rows


def test_deliveries_list_matching_nothing_says_so_on_stderr(workdir):
    result = cli(workdir, "deliveries", "list")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "no deliveries match\n")


def _process_planning_deliveries(workdir, event_id: int) -> None:
    """As a worker processes an event: with the configured destinations, so its deliveries are planned (pending)."""
    from crm_sync.pipeline import process_event
    from crm_sync.store import StoreOptions
    from ingest.runtime import Runtime
    from ingest.settings import load_settings

    cwd = os.getcwd()
    os.chdir(workdir)  # the configured SQLite database is relative to it
    try:
        runtime = Runtime(load_settings(workdir / "crm-ingest.toml", env={}))
        process_event(runtime.sessions, event_id, options=StoreOptions.from_settings(runtime.settings))
        runtime.close()
    finally:
        os.chdir(cwd)


# --- bulk arguments: the same filters as the API, and errors that say exactly what is accepted -------------------

@pytest.mark.parametrize("bulk_filter", [("--status", "dead"), ("--source", "g"), ("--provider", "generic"),
                                         ("--since", "1h")])
def test_a_replay_by_any_one_filter_counts_in_a_dry_run(workdir, bulk_filter):
    store_requests(workdir, b"broken")
    result = cli(workdir, "replay", *bulk_filter, "--dry-run")
    assert (result.returncode, result.stdout.strip()) == (0, "would replay 1 of 1 event(s)"), result.stderr


def test_a_replay_by_provider_leaves_other_providers_events_alone(workdir):
    store_requests(workdir, b"broken")
    result = cli(workdir, "replay", "--provider", "jivo")
    assert (result.returncode, result.stdout.strip()) == (0, "replayed 0 of 0 event(s)"), result.stderr


def test_a_replay_by_source_alone_replays_its_finished_events(workdir):
    store_requests(workdir, b"broken")
    result = cli(workdir, "replay", "--source", "g")
    assert (result.returncode, result.stdout.strip()) == (0, "replayed 1 of 1 event(s)"), result.stderr


@pytest.mark.parametrize("arguments", [(), ("--dry-run",), ("--event", "1", "--status", "dead"),
                                       ("--event", "1", "--source", "g", "--dry-run")],
                         ids=["nothing", "dry-run-alone", "event-and-status", "event-and-source"])
def test_a_replay_needs_an_event_or_a_filter_but_not_both(workdir, arguments):
    store_requests(workdir, b"broken")
    result = cli(workdir, "replay", *arguments)
    assert result.returncode == 2 and result.stdout == ""
    assert "give --event ID, or --status, --source, --provider and/or --since (not both)" in result.stderr


@pytest.mark.parametrize("arguments", [(), ("--dry-run",), ("--destination", "hook"),
                                       ("--id", "1", "--status", "dead")],
                         ids=["nothing", "dry-run-alone", "destination-alone", "id-and-status"])
def test_a_delivery_retry_needs_an_id_or_a_status_but_not_both(workdir, arguments):
    result = cli(workdir, "deliveries", "retry", *arguments)
    assert result.returncode == 2 and result.stdout == ""
    assert "give --id ID, or --status failed or dead with an optional --destination (not both)" in result.stderr


def test_retrying_failed_deliveries_by_status_is_accepted(workdir):
    result = cli(workdir, "deliveries", "retry", "--status", "failed", "--dry-run")
    assert (result.returncode, result.stdout.strip()) == (0, "would retry 0 of 0 delivery(ies)"), result.stderr


def test_retrying_by_a_status_that_cannot_be_retried_is_a_usage_error_naming_those_that_can(workdir):
    result = cli(workdir, "deliveries", "retry", "--status", "pending", "--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    assert "'--status'" in result.stderr and "give status failed or dead" in result.stderr
