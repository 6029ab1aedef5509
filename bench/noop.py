"""The end-to-end benchmark's baseline: a Celery task that does nothing, on crm-ingest's own Celery app.

Its workers are `crm-ingest worker ... --include bench.noop`: the production command, settings (acks_late, prefetch
1, reject on worker lost, task events, JSON) and pool, plus this one task. Its messages are published the way the
web process publishes events (its TaskPublisher, over one kept connection) to the same queue on the same broker. What
that pipeline sustains is the floor Celery and Redis put under any work done per event.
"""
from __future__ import annotations

import time
from celery import shared_task

from ingest.outbox import BACKGROUND_BATCH_MAX_EVENTS, INGEST_QUEUE
from ingest.runtime import Runtime
from ingest.task_publisher import TaskPublisher  # the outbox's own publisher, so both pipelines publish alike

NOOP_TASK = "bench.noop"
# kombu's Redis transport keeps messages taken by a worker and not yet acknowledged in this hash (acks_late).
UNACKED_KEY = "unacked"


@shared_task(name=NOOP_TASK)
def noop(number: int) -> None:
    """Nothing: what is measured is the broker round trips and the worker's own bookkeeping around a task."""


def publish_noops(runtime: Runtime, first: int, count: int, batch: int = BACKGROUND_BATCH_MAX_EVENTS) -> None:
    """`count` no-op messages, in batches as the web's background publisher sends events."""
    publisher = TaskPublisher(runtime.celery, NOOP_TASK, INGEST_QUEUE)
    try:
        for start in range(first, first + count, batch):
            publisher.publish([[number] for number in range(start, min(start + batch, first + count))])
    finally:
        publisher.close()


def wait_until_consumed(redis_url: str, key_prefix: str, timeout: float, poll: float = 0.005) -> float:
    """Until the queue is empty and no message is held unacknowledged; when that was seen (time.perf_counter())."""
    import redis

    client = redis.Redis.from_url(redis_url)
    queue_key, unacked_key = f"{key_prefix}{INGEST_QUEUE}", f"{key_prefix}{UNACKED_KEY}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            with client.pipeline(transaction=False) as pipe:
                waiting, held = pipe.llen(queue_key).hlen(unacked_key).execute()
            if not waiting and not held:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{waiting} no-op message(s) waiting and {held} unacknowledged after {timeout:g}s")
            time.sleep(poll)
    finally:
        client.close()

