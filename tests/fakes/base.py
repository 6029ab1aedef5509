"""A fake CRM: a real HTTP server on loopback with an in-memory store, switchable faults and a call log.

A vendor fake subclasses `FakeCRM`, declares its routes and writes the vendor's real response shapes. Faults are
set by the test on `fake.faults`: scripted ones (`faults.script(Fault.rate_limit(retry_after=7))`, consumed in
order by the first request they match) for deterministic tests, random ones from a seeded generator for soak tests.
Every request is handled under one lock, so the store behaves like a serialisable database; latency and timeouts
are spent outside it.
"""
from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from tests.fakes.faults import Fault, Faults

__all__ = ["Call", "FakeCRM", "FakeRequest", "FakeResponse", "Fault", "Faults"]


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)   # named groups of the route pattern

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class FakeResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int | None           # None: no response (dropped or held)
    fault: str | None


Route = tuple[str, re.Pattern[str], Callable[[FakeRequest], FakeResponse]]


class FakeCRM:
    """Subclasses set `vendor`, add routes in `__init__` with `self.route(...)` and implement the hooks below."""

    vendor = "fake"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.calls: list[Call] = []
        self.routes: list[Route] = []
        self._ids = itertools.count(1001)
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()

    # --- hooks for vendors --------------------------------------------------------------------------------------

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        """None when the request's credentials are right, else the vendor's 401."""
        return None

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else {}
        return FakeResponse(429, {"error": "rate limited"}, headers)

    def server_error(self) -> FakeResponse:
        return FakeResponse(500, {"error": "internal error"})

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(404, {"error": f"no route for {request.method} {request.path}"})

    # --- store helpers --------------------------------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Callable[[FakeRequest], FakeResponse]) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def new_id(self) -> int:
        return next(self._ids)

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def searchable(self, created_at: float) -> bool:
        """Whether a record created at `created_at` (monotonic) is visible to search yet."""
        return self.now() - created_at >= self.faults.search_lag_ms / 1000

    def count_calls(self, pattern: str = "") -> int:
        """Calls whose "METHOD /path" matches the regex, whatever their outcome."""
        return sum(1 for call in self.calls if re.search(pattern, f"{call.method} {call.path}"))

    # --- server ---------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @contextmanager
    def running(self) -> Iterator["FakeCRM"]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def start(self) -> "FakeCRM":
        fake = self

        class Handler(_Handler):
            crm = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         name=f"fake-{self.vendor}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def hold(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def dispatch(self, request: FakeRequest) -> FakeResponse:
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if method == request.method and match:
                request.params = match.groupdict()
                with self.lock:
                    return handler(request)
        return self.not_found(request)


class _Handler(BaseHTTPRequestHandler):
    crm: FakeCRM

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        request = FakeRequest(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
        crm = self.crm
        fault = crm.faults.next_fault(request)
        if crm.faults.latency_ms:
            crm.hold(crm.faults.latency_ms / 1000)
        response: FakeResponse | None
        if fault is None or fault.kind == "after_write":
            response = crm.dispatch(request)
            if fault is not None:
                response = self._after_write(fault, response)
        elif fault.kind == "timeout":
            crm.hold(crm.faults.hold_seconds)
            response = None
        elif fault.kind == "rate_limit":
            response = crm.rate_limited(fault.retry_after)
        elif fault.kind == "server_error":
            response = crm.server_error()
        else:
            response = FakeResponse(fault.status, fault.body, fault.headers, fault.content_type)
        crm.calls.append(Call(request.method, request.path, request.query, _decoded(request.body),
                              response.status if response else None, fault.kind if fault else None))
        if response is None:
            self.close_connection = True
            return
        self._write(response)

    def _after_write(self, fault: Fault, response: FakeResponse) -> FakeResponse | None:
        if fault.then == "rewrite":
            return fault.rewrite(copy.deepcopy(response))   # a copy: the answer may hold the store's own records
        if fault.then == "timeout":
            self.crm.hold(self.crm.faults.hold_seconds)
            return None
        if fault.then == "drop":
            return None
        return self.crm.server_error()

    def _write(self, response: FakeResponse) -> None:
        if response.body is None:
            payload = b""
        elif isinstance(response.body, (bytes, str)):
            payload = response.body.encode() if isinstance(response.body, str) else response.body
        else:
            payload = json.dumps(response.body).encode()
        try:
            self.send_response(response.status)
            if payload:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the client gave up (its timeout) before we answered


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode("utf-8", "replace")


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
