"""How many messages wait in each broker queue, asked of the broker through kombu.

`queue_declare` answers with the message count on every transport we run on. RabbitMQ: a passive declare (it
changes nothing; "not found" means nobody declared the queue yet, so nothing waits). kombu's virtual transports keep
queues client-side, so a plain declare only asks for the size: on Redis LLEN over the queue's list and its priority
lists under `broker_key_prefix` (kombu's passive check looks for the key without the prefix), on the embedded
filesystem broker a count of the queue's message files.

Every wait on the connection is bounded by `timeout` and a connection that failed is dropped without the closing
handshake: the relay, `/metrics` and `/readyz` ask, and a broker that stopped answering must not hold them.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

from celery import Celery
from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.transport import virtual

from ingest.task_publisher import with_socket_timeouts


def queue_depths(celery: Celery, queues: Iterable[str], timeout: float) -> tuple[dict[str, int], int | None]:
    """({queue: waiting messages}, messages taken by workers and not yet acknowledged, where the broker knows)."""
    with bounded_connection(celery.connection_for_read(), timeout) as connection:
        depths = {queue: _depth(connection, queue) for queue in queues}
        return depths, _unacked(connection)


@contextmanager
def bounded_connection(connection: Connection, timeout: float) -> Iterator[Connection]:
    """The broker connected (one retry at once, not after kombu's two-second sleep), each socket wait at most
    `timeout`; closed afterwards, or dropped if anything failed."""
    connection = with_socket_timeouts(connection, timeout)
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        yield connection
    except BaseException:
        _drop(connection)
        raise
    try:
        connection.close()
    except Exception:  # the broker stopped answering just now: nothing to close cleanly
        _drop(connection)


def _drop(connection: Connection) -> None:
    """Let go of the connection without telling the broker (which may not be listening)."""
    try:
        connection.collect()
    except Exception:
        pass


def _depth(connection, queue: str) -> int:
    channel = connection.channel()
    try:
        passive = not isinstance(channel, virtual.Channel)
        return channel.queue_declare(queue=queue, passive=passive).message_count
    except ChannelError:  # RabbitMQ: never declared, so nothing waiting
        return 0
    finally:
        _close(channel)


def _unacked(connection) -> int | None:
    """Redis keeps the messages handed to workers in one hash until they are acknowledged."""
    if connection.transport.driver_type != "redis":
        return None
    channel = connection.channel()
    try:
        with channel.conn_or_acquire() as client:
            return int(client.hlen(channel.unacked_key))
    finally:
        _close(channel)


def _close(channel) -> None:
    try:
        channel.close()
    except Exception:  # a channel the broker closed after "not found" is already gone
        pass
