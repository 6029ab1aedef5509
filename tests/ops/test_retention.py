"""Retention: raw requests of finished events are purged past a cutoff; metadata stays; purged events are not
replayed."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from crm_sync.pipeline import process_event
from ingest.db import transaction
from ingest.event_admin import EventFilter, replay_matching
from ingest.retention import BATCH, PURGE_TASK, batch_query, purge_raw_requests, run_retention
from ingest.runtime import Runtime
from ingest.schema import Event, utcnow
from tests.ops.conftest import post_generic

OLD = timedelta(days=40)
BODY = b'{"email": "ivan@example.com", "name": "Ivan", "type": "lead"}'


def age_events(runtime: Runtime, by: timedelta, *event_ids: int) -> None:
    with transaction(runtime.sessions) as session:
        session.execute(update(Event).where(Event.id.in_(event_ids)).values(received_at=utcnow() - by))


def event(runtime: Runtime, event_id: int) -> Event:
    with runtime.sessions() as session:
        return session.get(Event, event_id)


def stored_and_processed(client, runtime, *bodies: bytes) -> None:
    for number, body in enumerate(bodies, start=1):
        post_generic(client, body)
        process_event(runtime.sessions, number)


def test_purge_drops_the_raw_request_and_keeps_the_metadata(ops_client, ops_runtime, admin_headers):
    client = ops_client
    client.post("/hooks/generic-main?utm=x&token=secret", data=BODY,
                headers={"Authorization": f"Bearer {ops_runtime.settings.sources['generic-main'].token.get_secret_value()}",
                         "Content-Type": "application/json", "X-Request-Id": "r-1"})
    process_event(ops_runtime.sessions, 1)
    before = event(ops_runtime, 1)
    age_events(ops_runtime, OLD, 1)

    report = purge_raw_requests(ops_runtime.sessions, utcnow() - timedelta(days=30))

    after = event(ops_runtime, 1)
    assert (report.events, report.body_bytes) == (1, len(BODY))
    assert (after.body, after.headers, after.query_string) == (None, {}, "")
    assert after.purged_at is not None
    assert "records" not in after.result and after.result["contact_ids"] == before.result["contact_ids"]
    kept = ("id", "source", "provider", "dedup_key", "status", "processed_at", "attempts", "duplicate_count")
    assert {name: getattr(after, name) for name in kept} == {name: getattr(before, name) for name in kept}
    detail = client.get("/api/events/1", headers=admin_headers).json
    assert detail["purged_at"] and (detail["request"]["body"], detail["request"]["body_size"]) == (None, None)


def test_purge_leaves_recent_and_unfinished_events_alone(ops_client, ops_runtime):
    stored_and_processed(ops_client, ops_runtime, b'{"n": 1}', b'{"n": 2}')
    post_generic(ops_client, b'{"n": 3}')  # never processed
    age_events(ops_runtime, OLD, 1, 3)

    report = purge_raw_requests(ops_runtime.sessions, utcnow() - timedelta(days=30))

    assert report.events == 1
    assert [event(ops_runtime, n).body is None for n in (1, 2, 3)] == [True, False, False]


def test_the_error_of_a_purged_dead_event_is_kept_with_personal_data_masked(ops_client, ops_runtime):
    post_generic(ops_client, b'{"phone": "+79161234567", ')
    process_event(ops_runtime.sessions, 1)
    with transaction(ops_runtime.sessions) as session:  # as a provider module quoting the input would
        session.execute(update(Event).values(error_message="no name for ivan@example.com"))
    age_events(ops_runtime, OLD, 1)

    purge_raw_requests(ops_runtime.sessions, utcnow() - timedelta(days=30))

    after = event(ops_runtime, 1)
    assert (after.status, after.error_class, after.error_message) == ("dead", "parse_error", "no name for <email>")


def test_a_dry_run_counts_and_changes_nothing(ops_client, ops_runtime):
    stored_and_processed(ops_client, ops_runtime, BODY, b'{"n": 2}')
    age_events(ops_runtime, OLD, 1, 2)

    report = purge_raw_requests(ops_runtime.sessions, utcnow() - timedelta(days=30), dry_run=True)

    assert (report.events, report.body_bytes, report.dry_run) == (2, len(BODY) + len(b'{"n": 2}'), True)
    assert event(ops_runtime, 1).body == BODY and event(ops_runtime, 1).purged_at is None


def test_purging_in_several_batches_purges_everything(ops_client, ops_runtime):
    stored_and_processed(ops_client, ops_runtime, *(f'{{"n": {n}}}'.encode() for n in range(5)))
    age_events(ops_runtime, OLD, 1, 2, 3, 4, 5)

    report = purge_raw_requests(ops_runtime.sessions, utcnow() - timedelta(days=30), batch=2)

    assert report.events == 5
    assert all(event(ops_runtime, n).purged_at for n in range(1, 6))


def test_replaying_a_purged_event_is_refused_with_409_purged(ops_client, ops_runtime, admin_headers):
    stored_and_processed(ops_client, ops_runtime, BODY)
    age_events(ops_runtime, OLD, 1)
    purge_raw_requests(ops_runtime.sessions, utcnow() - timedelta(days=30))

    response = ops_client.post("/api/events/1/replay", headers=admin_headers)

    assert response.status_code == 409
    assert response.json["error"] == "purged"
    assert "cannot be replayed" in response.json["message"]
    assert event(ops_runtime, 1).status == "processed"


def test_a_bulk_replay_skips_purged_events_and_says_how_many(ops_client, ops_runtime):
    for body in (b"bad 1", b"bad 2"):
        post_generic(ops_client, body)
    for event_id in (1, 2):
        process_event(ops_runtime.sessions, event_id)
    age_events(ops_runtime, OLD, 1)
    purge_raw_requests(ops_runtime.sessions, utcnow() - timedelta(days=30))

    outcome = replay_matching(ops_runtime, EventFilter(status="dead"), dry_run=False)

    assert outcome == {"dry_run": False, "matching": 2, "purged": 1, "not_finished": 0, "replayable": 1,
                       "replayed": 1}
    assert [event(ops_runtime, n).status for n in (1, 2)] == ["dead", "received"]


def test_the_daily_job_purges_past_retention_days_and_does_nothing_when_off(ops_client, ops_runtime):
    stored_and_processed(ops_client, ops_runtime, b'{"n": 1}', b'{"n": 2}')
    age_events(ops_runtime, timedelta(days=8), 1)

    assert run_retention(ops_runtime.sessions, None) is None
    report = run_retention(ops_runtime.sessions, 7)

    assert report.events == 1 and event(ops_runtime, 1).purged_at and event(ops_runtime, 2).purged_at is None


def test_beat_runs_the_purge_daily_only_when_retention_days_is_set(database_url, make_settings):
    off, on = (Runtime(make_settings(database_url, **extra)) for extra in ({}, {"retention_days": 30}))
    try:
        assert all(entry["task"] != PURGE_TASK for entry in off.celery.conf.beat_schedule.values())
        daily = on.celery.conf.beat_schedule["purge-raw-requests"]
        assert daily["task"] == PURGE_TASK and daily["options"]["queue"] == "maintenance"
        assert PURGE_TASK in on.celery.tasks
    finally:
        off.close()
        on.close()


def test_a_purge_in_batches_purges_every_finished_event_once(ops_client, ops_runtime):
    for n in range(5):
        post_generic(ops_client, {"n": n})
        process_event(ops_runtime.sessions, n + 1)
    report = purge_raw_requests(ops_runtime.sessions, utcnow() + timedelta(seconds=1), batch=2)
    assert report.events == 5
    with ops_runtime.sessions() as session:
        assert session.query(Event).filter(Event.purged_at.is_(None)).count() == 0


def test_a_later_batch_of_a_purge_reads_on_from_the_last_id_of_the_batch_before(ops_client, ops_runtime):
    """A batch that read from the first id again would walk every row the run purged before it."""
    for n in range(5):
        post_generic(ops_client, {"n": n})
        process_event(ops_runtime.sessions, n + 1)
    with ops_runtime.sessions() as session:
        rows = session.execute(batch_query(utcnow() + timedelta(seconds=1), BATCH, after=3)).all()
    assert [row[0] for row in rows] == [4, 5]
