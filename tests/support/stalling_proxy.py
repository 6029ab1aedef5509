"""A TCP proxy in front of a real server that can stop passing bytes on: to its client the server looks as a broker
that stopped reading does (RabbitMQ under a memory or disk alarm) or one behind a network path that died silently."""
from __future__ import annotations

import socket
import threading


class StallingProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._sockets: list[socket.socket] = [self._listener]

    def __enter__(self) -> "StallingProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_) -> None:
        self._flowing.set()  # lets the held bytes go, into sockets that are closing
        for sock in self._sockets:
            sock.close()

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
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:  # either side closed
            pass
