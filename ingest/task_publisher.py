"""Publishing `ingest.process_events` messages: Celery's own message format over one broker connection kept open.

`Celery.send_task` costs the web process about as much CPU per message as storing the request does: it acquires a
pooled producer, re-routes the task, renders a safe repr of the arguments, emits a task-sent event (a second broker
command per message) and, for a batch on Redis, builds a fresh client. The ingress sends one kind of message to one
queue, so this keeps what matters (the message Celery itself would build, `app.amqp.as_task_v2`, published
persistent to the `ingest` queue, declared as Celery declares it, with Celery's before/after publish signals) and
drops the rest. Without the task-sent event
Flower lists a task once a worker receives it; messages still waiting are the queue's depth (Flower's Broker page,
`crm_ingest_queue_depth`).

On RabbitMQ the connection runs in publisher-confirm mode and each publish waits, at most publish_timeout_seconds,
for the broker's acknowledgement: an AMQP publish otherwise returns once the bytes are in the socket, so a message the
broker refuses (a queue limit, a memory or disk alarm blocking publishers, a connection gone half-open) would count as
enqueued and wait for the relay's stale pass. One round trip per message, and a message carries up to 100 events.
Every read and write on that connection is bounded by the same timeout (nothing on it waits for anything else), and
a connection that failed is dropped without the closing handshake: a broker that stopped answering would otherwise
hold the publishing thread forever.
"""
from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery, signals
from kombu import Connection, Producer
from kombu.utils.uuid import uuid

PERSISTENT = 2  # AMQP delivery mode: the broker keeps the message across its restart


def with_socket_timeouts(connection: Connection, timeout: float, **amqp_options: Any) -> Connection:
    """`connection` with every read and write on its socket bounded by `timeout`, on py-amqp (with `amqp_options`,
    e.g. confirm_publish): it otherwise waits for a broker that stopped answering forever. Redis has its
    socket_timeout in the broker's transport options already; the embedded broker has no socket."""
    if connection.transport.driver_type != "amqp":
        return connection
    return connection.clone(transport_options={**connection.transport_options, **amqp_options,
                                               "read_timeout": timeout, "write_timeout": timeout})


class TaskPublisher:
    """Publishes task messages for one task and queue; safe to share between threads (they take turns)."""

    def __init__(self, celery: Celery, task_name: str, queue_name: str):
        self.celery = celery
        self.task_name = task_name
        self.queue_name = queue_name
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._opened_by = 0  # pid

    def publish(self, arguments: list[list[Any]]) -> None:
        """One message per entry of `arguments` (each the task's positional args). Raises on a broker failure.

        A kept connection may have gone stale since its last use (the broker restarted): a failure on one is tried
        once more on a fresh connection. Messages sent before the failure may then go twice; processing absorbs that.
        """
        with self._lock:
            if self._opened_by != os.getpid():  # a forked child never writes on its parent's socket
                self._connection = self._producer = None
            kept = self._producer is not None
            try:
                self._send_all(arguments)
            except Exception:
                if not kept:
                    raise
                self._send_all(arguments)

    def _send_all(self, arguments: list[list[Any]]) -> None:
        producer = self._producer or self._open()
        try:
            for args in arguments:
                self._send(producer, args)
        except Exception:
            self._drop()
            raise

    def close(self) -> None:
        with self._lock:
            if self._opened_by == os.getpid():
                self._close()

    def _send(self, producer: Producer, args: list[Any]) -> None:
        task_id = uuid()
        message = self.celery.amqp.as_task_v2(task_id, self.task_name, args=args, argsrepr=repr(args),
                                              kwargsrepr="{}", ignore_result=True)
        declare = [self.celery.amqp.queues[self.queue_name]]
        # Celery's publish signals, as send_task sends them, for whatever hooks into them (tracing, error reporting).
        signals.before_task_publish.send(sender=self.task_name, body=message.body, exchange="",
                                         routing_key=self.queue_name, declare=declare, headers=message.headers,
                                         properties=message.properties, retry_policy=None)
        producer.publish(message.body, exchange="", routing_key=self.queue_name, serializer="json",
                         delivery_mode=PERSISTENT, declare=declare, headers=message.headers, retry=False,
                         timeout=self._timeout, **message.properties)
        signals.after_task_publish.send(sender=self.task_name, body=message.body, exchange="",
                                        routing_key=self.queue_name)

    @property
    def _timeout(self) -> float:
        return self.celery.conf.broker_connection_timeout  # publish_timeout_seconds

    def _open(self) -> Producer:
        self._connection = with_socket_timeouts(self.celery.connection_for_write(), self._timeout,
                                                confirm_publish=True)
        # One attempt: a dead broker costs one connect timeout, then the relay takes over (kombu's connect() would
        # try again after sleeping two seconds).
        self._connection.ensure_connection(max_retries=0)
        self._producer = Producer(self._connection.default_channel, auto_declare=False)
        self._opened_by = os.getpid()
        return self._producer

    def _close(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # closing a connection that already broke
                pass

    def _drop(self) -> None:
        """Let go of a connection that failed, without telling the broker (which may not be listening)."""
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.collect()
            except Exception:
                pass
