"""How many messages wait in each broker queue, asked of the broker through kombu.

`queue_declare` answers with the message count on every transport we run on. RabbitMQ: a passive declare (it
changes nothing; "not found" means nobody declared the queue yet, so nothing waits). kombu's virtual transports keep
queues client-side, so a plain declare only asks for the size: on Redis LLEN over the queue's list and its priority
lists under `broker_key_prefix` (kombu's passive check looks for the key without the prefix), on the embedded
filesystem broker a count of the queue's message files.
"""
from __future__ import annotations

from typing import Iterable

from celery import Celery
from kombu.exceptions import ChannelError
from kombu.transport import virtual


def queue_depths(celery: Celery, queues: Iterable[str], timeout: float) -> tuple[dict[str, int], int | None]:
    """({queue: waiting messages}, messages taken by workers and not yet acknowledged, where the broker knows)."""
    with celery.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        depths = {queue: _depth(connection, queue) for queue in queues}
        return depths, _unacked(connection)


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
