"""A TCP proxy in front of a real server that passes bytes on until its client sends a given one (an AMQP method
frame, say), then holds that connection: nothing more goes either way, and it stays open. To the client the server
answered everything up to that request and then went silent, as RabbitMQ does under a memory or disk alarm, or one
behind a network path that died after the handshake."""
from __future__ import annotations

import socket
import threading

# The AMQP method frame `queue.declare` of the `ingest` queue (class 50, method 10, reserved short, queue name).
QUEUE_DECLARE_INGEST = b"\x00\x32\x00\x0a\x00\x00\x06ingest"


class HoldingProxy:
    def __init__(self, host: str, port: int, trigger: bytes):
        self.target = (host, port)
        self.trigger = trigger
        self.held = threading.Event()  # set once a connection is held
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]

    def __enter__(self) -> "HoldingProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_) -> None:
        self._closing.set()
        for sock in self._sockets:
            sock.close()

    def url_for(self, url: str) -> str:
        """`url` with the target's host:port replaced by the proxy's."""
        host, port = self.target
        return url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed by __exit__
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, watch: bool) -> None:
        try:
            while data := source.recv(65536):
                if watch and self.trigger in data:
                    self.held.set()
                    self._closing.wait()  # hold: the bytes are never passed on
                    return
                sink.sendall(data)
        except OSError:  # either side closed
            pass
