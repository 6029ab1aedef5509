"""The ingress's task publisher: Celery's own messages over one kept broker connection, which survives a broker
restart and never carries a forked child's messages on its parent's socket."""
from __future__ import annotations

import os

import pytest

from bench.redis_server import RedisServer, redis_server_binary
from ingest.outbox import INGEST_QUEUE, PROCESS_EVENTS_TASK
from ingest.runtime import Runtime
from ingest.task_publisher import TaskPublisher
from tests.conftest import IN_CI
from tests.support.queues import waiting_messages


@pytest.fixture
def own_redis(tmp_path):
    if redis_server_binary() is None:
        message = "redis-server is not installed: these tests restart one of their own"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true this is a failure, not a skip", pytrace=False)
        pytest.skip(message)
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def redis_runtime(tmp_path, make_settings, own_redis):
    runtime = Runtime(make_settings(f"sqlite:///{tmp_path}/crm-ingest.db", own_redis.url))
    yield runtime
    runtime.close()


def test_each_entry_becomes_one_celery_task_message_in_the_ingest_queue(redis_runtime):
    publisher = TaskPublisher(redis_runtime.celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)
    publisher.publish([[[1, 2]], [[3]]])
    publisher.close()
    assert waiting_messages(redis_runtime) == [(PROCESS_EVENTS_TASK, [[1, 2]]), (PROCESS_EVENTS_TASK, [[3]])]


def test_a_publish_after_the_broker_restarted_goes_through_on_a_fresh_connection(redis_runtime, own_redis):
    publisher = TaskPublisher(redis_runtime.celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)
    publisher.publish([[[1]]])
    own_redis.restart(down_seconds=0)   # loses the queued message and breaks the kept connection
    publisher.publish([[[2]]])
    publisher.close()
    assert waiting_messages(redis_runtime) == [(PROCESS_EVENTS_TASK, [[2]])]


def test_a_publish_to_a_dead_broker_raises(redis_runtime, own_redis):
    publisher = TaskPublisher(redis_runtime.celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)
    publisher.publish([[[1]]])
    own_redis.crash()
    with pytest.raises(Exception):
        publisher.publish([[[2]]])


def _publish_in_child(publisher: TaskPublisher) -> None:
    parents_connection = publisher._connection
    publisher.publish([[[2]]])
    os._exit(0 if publisher._connection is not parents_connection else 3)


def test_a_forked_child_publishes_on_a_connection_of_its_own(redis_runtime):
    import multiprocessing

    publisher = TaskPublisher(redis_runtime.celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)
    publisher.publish([[[1]]])
    child = multiprocessing.get_context("fork").Process(target=_publish_in_child, args=(publisher,))
    child.start()
    child.join(timeout=30)
    publisher.publish([[[3]]])
    publisher.close()
    assert child.exitcode == 0
    assert sorted(args for _, args in waiting_messages(redis_runtime)) == [[[1]], [[2]], [[3]]]
