"""The ingress's task publisher: Celery's own messages over one kept broker connection, which survives a broker
restart and never carries a forked child's messages on its parent's socket; on RabbitMQ every message confirmed."""
from __future__ import annotations

import json
import os
import threading
from urllib.parse import urlsplit

import pytest
from amqp.exceptions import MessageNacked

from bench.redis_server import RedisServer, redis_server_binary
from ingest.outbox import INGEST_QUEUE, PROCESS_EVENTS_TASK
from ingest.runtime import Runtime
from ingest.task_publisher import TaskPublisher
from tests.conftest import IN_CI, close_rabbitmq_connections, rabbitmqctl, vhost_of
from tests.support.queues import waiting_messages
from tests.support.stalling_proxy import StallingProxy

# A RabbitMQ policy on this queue name only: no message fits (max-length 0) and the broker refuses each one.
REFUSING_QUEUE = "refusing"
REFUSE_EVERY_MESSAGE = {"max-length": 0, "overflow": "reject-publish"}


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
    """On a Redis server of the test's own, which it may restart or crash."""
    runtime = Runtime(make_settings(f"sqlite:///{tmp_path}/crm-ingest.db", own_redis.url))
    yield runtime
    runtime.close()


@pytest.fixture
def server_runtime(tmp_path, make_settings, broker_server):
    """On the shared Redis and on RabbitMQ (SQLite: publishing never touches the database)."""
    runtime = Runtime(make_settings(f"sqlite:///{tmp_path}/crm-ingest.db", broker_server.url))
    yield runtime
    runtime.close()


@pytest.fixture
def rabbitmq_runtime(tmp_path, make_settings, rabbitmq_broker_url):
    runtime = Runtime(make_settings(f"sqlite:///{tmp_path}/crm-ingest.db", rabbitmq_broker_url))
    yield runtime
    runtime.close()


def test_each_entry_becomes_one_celery_task_message_in_the_ingest_queue(server_runtime):
    publisher = TaskPublisher(server_runtime.celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)
    publisher.publish([[[1, 2]], [[3]]])
    publisher.close()
    assert waiting_messages(server_runtime) == [(PROCESS_EVENTS_TASK, [[1, 2]]), (PROCESS_EVENTS_TASK, [[3]])]


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


def test_a_publish_after_rabbitmq_closed_the_kept_connection_goes_through_on_a_fresh_one(rabbitmq_runtime):
    publisher = TaskPublisher(rabbitmq_runtime.celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)
    publisher.publish([[[1]]])
    close_rabbitmq_connections(rabbitmq_runtime.settings.broker_url)
    publisher.publish([[[2]]])
    publisher.close()
    assert waiting_messages(rabbitmq_runtime) == [(PROCESS_EVENTS_TASK, [[1]]), (PROCESS_EVENTS_TASK, [[2]])]


def test_a_message_rabbitmq_refuses_raises_instead_of_counting_as_enqueued(rabbitmq_runtime):
    """Publisher confirms: without them the publish returns and the message is gone, while the outbox records the
    event as enqueued and the relay finds it only once requeue_after_seconds have passed."""
    rabbitmqctl("set_policy", "--vhost", vhost_of(rabbitmq_runtime.settings.broker_url), "--apply-to", "queues",
                "refuse-every-message",
                f"^{REFUSING_QUEUE}$", json.dumps(REFUSE_EVERY_MESSAGE))
    publisher = TaskPublisher(rabbitmq_runtime.celery, PROCESS_EVENTS_TASK, REFUSING_QUEUE)
    with pytest.raises(MessageNacked):
        publisher.publish([[[1]]])


def test_a_publish_to_a_rabbitmq_that_stopped_answering_fails_instead_of_hanging(tmp_path, make_settings,
                                                                                 rabbitmq_broker_url):
    """Each wait on that connection is bounded by publish_timeout_seconds, and the closing handshake is skipped."""
    server = urlsplit(rabbitmq_broker_url)
    with StallingProxy(server.hostname, server.port) as proxy:
        runtime = Runtime(make_settings(f"sqlite:///{tmp_path}/crm-ingest.db", proxy.url_for(rabbitmq_broker_url),
                                        publish_timeout_seconds=0.5))
        publisher = TaskPublisher(runtime.celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)
        publisher.publish([[[1]]])
        proxy.stall()
        failures: list[Exception] = []

        def publish_again() -> None:
            try:
                publisher.publish([[[2]]])
            except Exception as exc:
                failures.append(exc)
        attempt = threading.Thread(target=publish_again, daemon=True)
        attempt.start()
        attempt.join(timeout=30)  # a bound on a hang, not a speed: it fails after about two publish timeouts
        runtime.close()

    assert not attempt.is_alive(), "the publish is still waiting for a broker that stopped answering"
    assert failures, "a publish the broker never confirmed counts as a failure, left to the relay"


def _publish_in_child(publisher: TaskPublisher) -> None:
    parents_connection = publisher._connection
    publisher.publish([[[2]]])
    os._exit(0 if publisher._connection is not parents_connection else 3)


def test_a_forked_child_publishes_on_a_connection_of_its_own(server_runtime):
    import multiprocessing

    publisher = TaskPublisher(server_runtime.celery, PROCESS_EVENTS_TASK, INGEST_QUEUE)
    publisher.publish([[[1]]])
    child = multiprocessing.get_context("fork").Process(target=_publish_in_child, args=(publisher,))
    child.start()
    child.join(timeout=30)
    publisher.publish([[[3]]])
    publisher.close()
    assert child.exitcode == 0
    assert sorted(args for _, args in waiting_messages(server_runtime)) == [[[1]], [[2]], [[3]]]
