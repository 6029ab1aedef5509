"""An event that kills its worker, or meets a transient database error, spends its own attempts only: the other events
of its task message end processed. On SQLite and PostgreSQL, through the real event store and `process_events`.

A delivery of a task message runs in a forked child, as a Celery pool process runs it; when the child dies, the
message is delivered again (task_acks_late + task_reject_on_worker_lost), in a fresh child.
"""
from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from crm_sync.pipeline import process_events
from ingest.db import transaction
from ingest.event_admin import replay_events
from ingest.runtime import Runtime
from ingest.schema import Event, EventStatus
from ingest.settings import Settings
from tests.contacts.conftest import chat, report, visitor
from tests.contacts.scripted import FLAKY, KILLER

MAX_ATTEMPTS = 3
KILLED = 137


def _run_message(settings: Settings, event_ids: list[int]) -> None:
    runtime = Runtime(settings)
    process_events(runtime.sessions, event_ids, settings.max_process_attempts)
    runtime.close()


def deliver_until_it_survives(settings: Settings, event_ids: list[int]) -> list[int]:
    """Run the message in a forked child until a child survives it; the exit codes, one per delivery."""
    codes: list[int] = []
    while not codes or codes[-1] == KILLED:
        assert len(codes) <= MAX_ATTEMPTS + 1, f"still killing its worker after {len(codes)} deliveries"
        child = multiprocessing.get_context("fork").Process(target=_run_message, args=(settings, event_ids))
        child.start()
        child.join()
        codes.append(child.exitcode)
    return codes


@pytest.fixture
def killer_store(make_store):
    return make_store(sources={"killer": {"provider": KILLER}, "flaky": {"provider": FLAKY}},
                      max_process_attempts=MAX_ATTEMPTS)


def _message_with_poison(store) -> tuple[list[int], int]:
    """Nine events of new people and, in the middle of the message, one that kills its worker."""
    innocent = [store.deliver(report(visitor(email=f"p{n}@example.ru"), chat(f"c{n}")), source="killer",
                              provider=KILLER) for n in range(9)]
    poison = store.deliver(report(visitor(name="poison"), chat("poison")), source="killer", provider=KILLER)
    return innocent[:4] + [poison] + innocent[4:], poison


def _states(store, event_ids) -> dict[int, tuple]:
    return {event_id: (store.event(event_id).status, store.event(event_id).error_class) for event_id in event_ids}


def test_an_event_that_kills_its_worker_goes_dead_alone_and_the_rest_of_its_message_is_processed(killer_store):
    message, poison = _message_with_poison(killer_store)

    codes = deliver_until_it_survives(killer_store.runtime.settings, message)

    assert codes[-1] == 0
    innocent = [event_id for event_id in message if event_id != poison]
    assert _states(killer_store, innocent) == {event_id: ("processed", None) for event_id in innocent}
    assert _states(killer_store, [poison]) == {poison: ("dead", "attempts_exhausted")}
    assert killer_store.event(poison).attempts == MAX_ATTEMPTS + 1
    # the first death counted one attempt for every event of the message; after that, only the poison's own
    assert max(killer_store.event(event_id).attempts for event_id in innocent) <= 2
    assert len(killer_store.contacts()) == 9


def test_a_replayed_message_that_kills_its_worker_again_goes_one_event_at_a_time(killer_store):
    message, poison = _message_with_poison(killer_store)
    with transaction(killer_store.runtime.sessions) as session:  # what the message's deaths left before the fix
        session.execute(update(Event).where(Event.id.in_(message)).values(
            status=EventStatus.DEAD, attempts=MAX_ATTEMPTS + 1, error_class="attempts_exhausted"))
    replayed = replay_events(killer_store.runtime, message)   # `replay --status dead`: one message for them all

    deliver_until_it_survives(killer_store.runtime.settings, replayed)

    innocent = [event_id for event_id in message if event_id != poison]
    assert _states(killer_store, innocent) == {event_id: ("processed", None) for event_id in innocent}
    assert _states(killer_store, [poison]) == {poison: ("dead", "attempts_exhausted")}


def _flaky_message(store) -> list[int]:
    return [store.deliver(report(visitor(email=f"{name}@example.ru"), chat(name)), source="flaky", provider=FLAKY)
            for name in ("anna", "flaky", "boris")]


def test_a_transient_error_of_one_event_is_raised_after_the_rest_of_its_message_is_processed(killer_store):
    first, flaky, last = _flaky_message(killer_store)

    with pytest.raises(OperationalError):
        process_events(killer_store.runtime.sessions, [first, flaky, last], MAX_ATTEMPTS)

    assert _states(killer_store, [first, last]) == {first: ("processed", None), last: ("processed", None)}
    assert (killer_store.event(flaky).status, killer_store.event(flaky).attempts) == ("processing", 1)


def test_the_retry_after_a_transient_error_counts_an_attempt_for_the_failed_event_only(killer_store):
    first, flaky, last = _flaky_message(killer_store)
    with pytest.raises(OperationalError):
        process_events(killer_store.runtime.sessions, [first, flaky, last], MAX_ATTEMPTS)

    with pytest.raises(OperationalError):   # the task's retry: the same message again
        process_events(killer_store.runtime.sessions, [first, flaky, last], MAX_ATTEMPTS)

    assert [killer_store.event(event_id).attempts for event_id in (first, flaky, last)] == [1, 2, 1]


def test_two_transient_errors_in_a_row_are_raised_at_once_and_leave_the_rest_for_the_retry(killer_store):
    """Two events in a row failing on the database is the database failing: the rest are not tried one by one."""
    flaky = [killer_store.deliver(report(visitor(email=f"flaky{n}@example.ru"), chat(f"flaky{n}")), source="flaky",
                                  provider=FLAKY) for n in range(2)]
    last = killer_store.deliver(report(visitor(email="boris@example.ru"), chat("boris")), source="flaky",
                                provider=FLAKY)

    with pytest.raises(OperationalError):
        process_events(killer_store.runtime.sessions, [*flaky, last], MAX_ATTEMPTS)

    assert _states(killer_store, [last]) == {last: ("processing", None)}
