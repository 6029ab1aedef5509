"""Logs of an event's way: one JSON line per step (stored, enqueued, processing, processed or dead), each naming
the event and its source, a redelivery logged as a duplicate of the first event.
"""
from __future__ import annotations

from crm_sync.pipeline import process_event, process_events
from ingest.db import transaction
from ingest.events import EventRef, mark_not_enqueued
from tests.ops.conftest import post_generic


def lines_about(lines: list[dict], event_id: int) -> list[dict]:
    """The lines naming the event: by its `event_id`, or among the `event_ids` of a batch."""
    return [line for line in lines if line.get("event_id") == event_id or event_id in line.get("event_ids", [])]


def test_each_step_of_an_event_is_one_json_line_naming_the_event_and_its_source(ops_client, ops_runtime, log_lines):
    read = log_lines("json")
    post_generic(ops_client, {"email": "a@example.com"})
    process_event(ops_runtime.sessions, 1)

    steps = lines_about(read(), 1)

    assert [line["message"] for line in steps] == ["event stored", "events enqueued", "event processing",
                                                   "event processed"]
    assert [line.get("source") for line in steps] == ["generic-main"] * 4
    assert steps[1]["queue"] == "ingest"
    assert steps[-1]["provider"] == "generic" and steps[-1]["outcome"] == "processed"
    assert steps[-1]["duration_ms"] >= 0
    assert all({"time", "level", "logger", "message"} <= set(line) for line in steps)


def test_each_event_of_a_message_is_logged_with_its_own_id_and_outcome(ops_client, ops_runtime, log_lines):
    read = log_lines("json")
    post_generic(ops_client, {"email": "a@example.com"})
    post_generic(ops_client, b"not json")
    post_generic(ops_client, {"email": "c@example.com"})

    process_events(ops_runtime.sessions, [1, 2, 3])

    lines = read()
    assert [(line["message"], line["event_id"]) for line in lines if line.get("attempt")] == [
        ("event processing", 1), ("event processing", 2), ("event processing", 3)]
    assert [lines_about(lines, event_id)[-1]["outcome"] for event_id in (1, 2, 3)] == ["processed", "dead",
                                                                                        "processed"]


def test_an_event_the_relay_enqueues_is_logged_with_its_source(ops_client, ops_runtime, log_lines):
    post_generic(ops_client, {"n": 1}, source="generic-b")
    with transaction(ops_runtime.sessions) as session:
        mark_not_enqueued(session, [1])   # as if the broker had refused the publish
    read = log_lines("json")

    assert ops_runtime.outbox.relay() == 1

    enqueued = [line for line in lines_about(read(), 1) if line["message"] == "events enqueued"]
    assert [(line["source"], line["queue"]) for line in enqueued] == [("generic-b", "ingest")]


def test_a_published_batch_is_one_line_per_source_listing_its_events(ops_runtime, log_lines):
    read = log_lines("json")

    ops_runtime.outbox.publish([EventRef(1, "generic-main"), EventRef(2, "jivo-main"), EventRef(3, "generic-main")])

    assert [(line["source"], line["event_ids"]) for line in read() if line["message"] == "events enqueued"] == [
        ("generic-main", [1, 3]), ("jivo-main", [2])]


def test_a_dead_event_is_logged_with_its_reason(ops_client, ops_runtime, log_lines):
    read = log_lines("json")
    post_generic(ops_client, b"not json")
    process_event(ops_runtime.sessions, 1)

    last = lines_about(read(), 1)[-1]

    assert last["level"] == "WARNING"
    assert last["outcome"] == "dead" and last["reason"] == "parse_error"
    assert "not valid JSON" in last["message"]


def test_a_redelivery_is_logged_as_a_duplicate_of_the_first_event(ops_client, log_lines):
    read = log_lines("json")
    post_generic(ops_client, b'{"n": 1}')
    post_generic(ops_client, b'{"n": 1}')

    stored = [line for line in read() if line.get("source") == "generic-main" and "outcome" in line]

    assert [(line["event_id"], line["outcome"]) for line in stored] == [(1, "accepted"), (1, "duplicate")]
