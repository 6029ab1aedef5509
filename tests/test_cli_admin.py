"""The operator commands refuse what they cannot do: out-of-range times and ids are usage errors, a replay or a
retry of nothing fails, dry runs count what a real run would do, and long lists are paged with --before."""
from __future__ import annotations

import json

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
