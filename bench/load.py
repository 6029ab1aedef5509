"""A small HTTP/1.1 load generator for loopback benchmarks: asyncio streams, keep-alive connections, closed loop
(as fast as the server answers) or paced at an offered rate.

It is deliberately cheap (raw request bytes, a minimal response parser) because it shares the machine's cores with
the server it measures. Both endpoints of a comparison are driven by the same generator, so its own cost cancels out
of the ratio; `LoadResult.client_cpu_seconds` shows how busy it was.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

# A request's bytes for its sequence number: distinct bodies make every request a new event.
RequestFactory = Callable[[int], bytes]
# Told of every answered request: its number, status, and when it was sent and answered (time.perf_counter(), on
# Linux the same clock as time.monotonic(), which the fake CRMs stamp their records with).
ResponseListener = Callable[[int, int, float, float], None]
MAX_HEADER_BYTES = 64 * 1024


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, one per completed request
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # connection-level failures by exception class
    wall_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.latencies)

    def merge(self, other: "LoadResult") -> None:
        self.latencies.extend(other.latencies)
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        for name, count in other.errors.items():
            self.errors[name] = self.errors.get(name, 0) + count
        self.wall_seconds += other.wall_seconds
        self.client_cpu_seconds += other.client_cpu_seconds


def http_request(method: str, host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def run_load(host: str, port: int, make_request: RequestFactory, *, first: int, max_requests: int,
             max_seconds: float, concurrency: int, rate: float | None = None,
             schedule: Callable[[int], float] | None = None, on_response: ResponseListener | None = None
             ) -> LoadResult:
    """Send requests numbered first, first+1, … over `concurrency` connections until either bound is reached.

    With `rate`, request k is not sent before k/rate seconds after the start: an offered rate, held as long as the
    connections keep up (give enough of them). `schedule(number)` sets each request's own offset instead (requests
    with the same offset go out at once on different connections). `on_response` hears of every answered request.
    """
    if rate is not None:
        schedule = lambda number: (number - first) / rate  # noqa: E731
    return asyncio.run(_run(host, port, make_request, first, max_requests, max_seconds, concurrency, schedule,
                            on_response))


async def _run(host, port, make_request, first, max_requests, max_seconds, concurrency, schedule=None,
               on_response=None) -> LoadResult:
    result = LoadResult()
    counter = iter(range(first, first + max_requests))
    started_cpu, started = time.process_time(), time.perf_counter()
    deadline = started + max_seconds
    pace = None if schedule is None else (lambda number: started + schedule(number))
    await asyncio.gather(*(_connection(host, port, make_request, counter, deadline, result, pace, on_response)
                           for _ in range(concurrency)))
    result.wall_seconds = time.perf_counter() - started
    result.client_cpu_seconds = time.process_time() - started_cpu
    return result


async def _connection(host, port, make_request, counter, deadline, result: LoadResult, pace=None,
                      on_response=None) -> None:
    """One client: a request, wait for its response, the next one (closed loop), reconnecting when needed."""
    reader = writer = None
    try:
        for number in counter:
            if pace is not None and (early := pace(number) - time.perf_counter()) > 0:
                await asyncio.sleep(early)
            if time.perf_counter() >= deadline:
                return
            payload = make_request(number)
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            sent = time.perf_counter()
            try:
                writer.write(payload)
                status, keep_alive = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
                writer.close()
                reader = writer = None
                continue
            answered = time.perf_counter()
            result.latencies.append(answered - sent)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if on_response is not None:
                on_response(number, status, sent, answered)
            if not keep_alive:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status and whether the connection stays open; the body is read and dropped (Content-Length framing)."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError("response header too large")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    length, keep_alive = 0, version == "HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            keep_alive = value.strip().lower() == "keep-alive"
        elif name == "transfer-encoding":
            raise ValueError("chunked responses are not supported by this generator")
    if length:
        await reader.readexactly(length)
    return int(status), keep_alive
