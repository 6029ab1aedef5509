"""gunicorn's threaded worker with a bound on how long a client may leave a request half sent.

gunicorn hands a connection to a request thread once its first bytes arrive, and the thread then reads the rest of
the headers and the body with blocking reads that never time out. A client that sends part of a request and stops
(a slowloris, or a proxy that stalled) holds that thread for as long as it keeps the connection open: sixteen such
connections stop a `crm-ingest web` with 2 workers of 8 threads, webhooks, /readyz and the admin API alike.

Here every read of a request waits at most READ_TIMEOUT_SECONDS for the client's next bytes (the socket's
SO_RCVTIMEO, which holds whatever blocking mode gunicorn sets): a stalled header read ends the connection without an
answer, and a stalled body read is answered 408 by the app (ingest.hooks). It bounds the wait between two packets,
not a whole request: a client that trickles a byte every few seconds is a buffering proxy's job (README, "Running
for real").
"""
from __future__ import annotations

import socket
import struct

from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

READ_TIMEOUT_SECONDS = 10


def read_timed_out(error: BaseException | None) -> bool:
    """Whether a read of the request ran out of time: the socket stays in blocking mode, so the timed-out recv fails
    with EAGAIN, which Python raises as BlockingIOError."""
    return isinstance(error, BlockingIOError)


def bound_reads(sock: socket.socket, seconds: float) -> None:
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def bounded_reads_worker(threads: int, read_timeout: float = READ_TIMEOUT_SECONDS) -> type:
    """The worker class for `threads` per worker (gthread, or sync for one), its reads bounded by `read_timeout`."""
    base = BoundedReadsThreadWorker if threads > 1 else BoundedReadsSyncWorker
    if read_timeout == base.read_timeout:
        return base
    return type(base.__name__, (base,), {"read_timeout": read_timeout})


class BoundedReadsThreadWorker(ThreadWorker):
    """gthread, with every read of a request bounded."""

    read_timeout: float = READ_TIMEOUT_SECONDS

    def handle(self, conn):
        if not conn.initialized:  # once per connection: the option stays for its kept-alive requests
            bound_reads(conn.sock, self.read_timeout)
        return super().handle(conn)


class BoundedReadsSyncWorker(SyncWorker):
    """sync (one request at a time per worker: `--threads 1`), with every read of a request bounded."""

    read_timeout: float = READ_TIMEOUT_SECONDS

    def handle(self, listener, client, addr):
        bound_reads(client, self.read_timeout)
        return super().handle(listener, client, addr)
