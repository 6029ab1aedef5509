"""TCP proxies in front of a real server that stop passing bytes on, the connections staying open: to their client
the server looks as a broker that stopped reading does (RabbitMQ under a memory or disk alarm), or one behind a
network path that died silently.

`StallingProxy` stops every connection when told (`stall()`); `HoldingProxy` holds a connection by itself once its
client sends a given request (an AMQP method frame, say): the server answered everything up to that request and
then went silent."""
from __future__ import annotations

import socket
import threading

# The AMQP method frame `queue.declare` of the `ingest` queue (class 50, method 10, reserved short, queue name).
QUEUE_DECLARE_INGEST = b"\x00\x32\x00\x0a\x00\x00\x06ingest"


class StallingProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]

    def __enter__(self) -> "StallingProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_) -> None:
        self._closing.set()
        self._flowing.set()  # lets the held bytes go, into sockets that are closing
        for sock in self._sockets:
            sock.close()

    def url_for(self, url: str) -> str:
        """`url` with the server's host:port replaced by the proxy's."""
        host, port = self.target
        return url.replace(f"{host}:{port}/", f"127.0.0.1:{self.port}/", 1)

    def stall(self) -> None:
        """From now on nothing received on either side is passed on (the connections stay open)."""
        self._flowing.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed by __exit__
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for source, sink, from_client in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, from_client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if not self._passes(data, from_client):
                    self._closing.wait()  # hold: the bytes are never passed on
                    return
                self._flowing.wait()
                sink.sendall(data)
        except OSError:  # either side closed
            pass

    def _passes(self, data: bytes, from_client: bool) -> bool:
        return True


class HoldingProxy(StallingProxy):
    def __init__(self, host: str, port: int, trigger: bytes):
        super().__init__(host, port)
        self.trigger = trigger
        self.held = threading.Event()  # set once a connection is held

    def _passes(self, data: bytes, from_client: bool) -> bool:
        if from_client and self.trigger in data:
            self.held.set()
            return False
        return True
