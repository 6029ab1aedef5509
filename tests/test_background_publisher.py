"""The web server's background publisher: events handed over after their response reach the broker in batches, a
stop publishes what is still queued, and a broker failure leaves the events for the relay."""
from __future__ import annotations

import json

import pytest

from ingest.events import EventRef
from ingest.outbox import EVENTS_PER_MESSAGE
from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import DEAD_BROKER_URLS, GENERIC_TOKEN, make_client, truncate_postgres
from tests.support.queues import waiting_messages
from tests.support.waiting import wait_until
from tests.support.workers import running_worker

HEADERS = {"Authorization": f"Bearer {GENERIC_TOKEN}", "Content-Type": "application/json"}


def statuses(runtime) -> list[str]:
    with runtime.sessions() as session:
        return [event.status for event in session.query(Event).order_by(Event.id)]


def queued_messages(runtime) -> list[list[int]]:
    """The event ids of each task message waiting in the ingest queue, in order (the messages are consumed)."""
    return [args[0] for _, args in waiting_messages(runtime)]


def queued_event_ids(runtime) -> list[int]:
    """The event ids carried by the task messages waiting in the ingest queue (the messages are consumed)."""
    return sorted(event_id for message in queued_messages(runtime) for event_id in message)


def post_events(runtime, count: int) -> None:
    client = make_client(runtime)
    for n in range(count):
        response = client.post("/hooks/generic-main", data=json.dumps({"email": f"n{n}@example.com"}).encode(),
                               headers=HEADERS)
        assert response.status_code == 200


def test_events_handed_to_the_background_publisher_reach_a_worker(runtime):
    runtime.outbox.start_background_publisher()
    post_events(runtime, 5)
    with running_worker(runtime):
        wait_until(lambda: statuses(runtime) == ["processed"] * 5, what="five events processed")
    runtime.outbox.stop_background_publisher()


def test_stopping_the_background_publisher_publishes_what_is_still_queued(runtime):
    runtime.outbox.start_background_publisher()
    post_events(runtime, 20)
    runtime.outbox.stop_background_publisher()
    assert queued_event_ids(runtime) == list(range(1, 21))


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def any_broker_runtime(request, tmp_path, make_settings):
    """On each broker we run on (SQLite: publishing never touches the database)."""
    url = "filesystem://" if request.param == "embedded" else request.getfixturevalue(f"{request.param}_broker_url")
    runtime = Runtime(make_settings(f"sqlite:///{tmp_path}/crm-ingest.db", url))
    yield runtime
    runtime.close()


def test_a_batch_goes_out_in_messages_of_at_most_events_per_message_ids(any_broker_runtime):
    runtime = any_broker_runtime
    events = [EventRef(event_id, "generic-main") for event_id in range(1, 2 * EVENTS_PER_MESSAGE + 51)]
    assert runtime.outbox.publish(events)
    messages = queued_messages(runtime)  # the embedded broker does not keep their order
    assert sorted(len(message) for message in messages) == [50, EVENTS_PER_MESSAGE, EVENTS_PER_MESSAGE]
    assert sorted(event_id for message in messages for event_id in message) == [event.id for event in events]


def test_after_a_stop_the_ingress_publishes_by_itself_again(runtime):
    runtime.outbox.start_background_publisher()
    runtime.outbox.stop_background_publisher()
    post_events(runtime, 1)
    assert queued_event_ids(runtime) == [1], "published before the request ended, with no thread to hand it to"


@pytest.mark.parametrize("dead_broker", DEAD_BROKER_URLS.values(), ids=DEAD_BROKER_URLS.keys())
def test_a_broker_failure_in_the_background_leaves_the_events_for_the_relay(postgres_schema_url, make_settings,
                                                                           dead_broker):
    truncate_postgres(postgres_schema_url)
    down = Runtime(make_settings(postgres_schema_url, dead_broker))
    down.outbox.start_background_publisher()
    post_events(down, 3)

    def left_for_relay() -> bool:
        with down.sessions() as session:
            events = session.query(Event).all()
            return len(events) == 3 and all(event.enqueued_at is None for event in events)

    wait_until(left_for_relay, what="the failed publish to mark the events for the relay")
    down.outbox.stop_background_publisher()
    down.close()



def test_events_arriving_within_the_publish_linger_go_out_in_one_message(database_url, make_settings):
    lingering = Runtime(make_settings(database_url, publish_linger_seconds=0.5))
    lingering.outbox.start_background_publisher()
    try:
        post_events(lingering, 4)   # the first starts the linger; the others arrive well within it
        wait_until(lambda: lingering.outbox._background._queue.empty(), what="the publisher to take the batch")
        lingering.outbox.stop_background_publisher()

        assert queued_messages(lingering) == [[1, 2, 3, 4]]
    finally:
        lingering.close()


def test_the_publish_linger_is_fifty_milliseconds_unless_configured(runtime):
    runtime.outbox.start_background_publisher()

    assert runtime.settings.publish_linger_seconds == 0.05
    assert runtime.outbox._background.linger_seconds == 0.05
    runtime.outbox.stop_background_publisher()
