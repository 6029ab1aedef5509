"""What goes wrong in a fake CRM: scripted faults for deterministic tests, seeded random ones for soak tests."""
from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from tests.fakes.base import FakeRequest, FakeResponse


@dataclass
class Fault:
    """One failure. `match` is a regex searched in "METHOD /path"; None matches any request.

    kinds: "status" (answer `status`/`body` instead of handling), "rate_limit" and "server_error" (the vendor's own
    shapes), "timeout" (hold the request past the client's timeout, nothing written), "after_write" (handle the
    request, so the write lands, then answer 500, drop the connection or hold it: `then`; or answer what `rewrite`
    makes of the vendor's answer, a copy of it: `Fault.rewrite_answer`).
    """

    kind: str
    match: str | None = None
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    then: str = "500"   # after_write: "500", "drop", "timeout" or "rewrite"
    content_type: str = "application/json"
    rewrite: Callable[["FakeResponse"], "FakeResponse"] | None = None

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1, match: str | None = None) -> "Fault":
        return cls("rate_limit", match, retry_after=retry_after)

    @classmethod
    def server_error(cls, match: str | None = None) -> "Fault":
        return cls("server_error", match)

    @classmethod
    def timeout(cls, match: str | None = None) -> "Fault":
        return cls("timeout", match)

    @classmethod
    def after_write(cls, match: str | None = None, then: str = "500") -> "Fault":
        return cls("after_write", match, then=then)

    @classmethod
    def rewrite_answer(cls, match: str | None, rewrite: Callable[["FakeResponse"], "FakeResponse"]) -> "Fault":
        """The request is handled (a write lands), and its answer replaced by `rewrite(answer)`: a CRM that answers
        a write it made with a wrong id, without one, or with a wrong shape."""
        return cls("after_write", match, then="rewrite", rewrite=rewrite)

    @classmethod
    def respond(cls, status: int, body: Any, match: str | None = None, headers: dict[str, str] | None = None,
                content_type: str = "application/json") -> "Fault":
        return cls("status", match, status=status, body=body, headers=headers or {}, content_type=content_type)

    def matches(self, request: FakeRequest) -> bool:
        return self.match is None or re.search(self.match, f"{request.method} {request.path}") is not None


@dataclass
class Faults:
    """A fake's switches. A scripted fault that matches a request wins; otherwise one random draw per request."""

    latency_ms: float = 0.0
    search_lag_ms: float = 0.0       # a record this young is invisible to the vendor's search endpoints
    # Random faults for soak tests, each drawn per request from `seed`'s generator.
    server_error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0
    after_write_rate: float = 0.0
    after_write_then: tuple[str, ...] = ("500", "drop")
    retry_after: float | None = 1.0
    hold_seconds: float = 5.0       # how long a timeout holds a request (the client gives up long before)
    seed: int = 0
    scripted: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def script(self, *faults: Fault) -> None:
        with self._lock:
            self.scripted.extend(faults)

    def reseed(self, seed: int) -> None:
        self.seed, self._random = seed, random.Random(seed)

    def next_fault(self, request: FakeRequest) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self.scripted):
                if fault.matches(request):
                    return self.scripted.pop(index)
            draw = self._random.random()
            for rate, make in ((self.server_error_rate, Fault.server_error),
                               (self.rate_limit_rate, lambda: Fault.rate_limit(self.retry_after)),
                               (self.timeout_rate, Fault.timeout),
                               (self.after_write_rate,
                                lambda: Fault.after_write(then=self._random.choice(self.after_write_then)))):
                if draw < rate:
                    return make()
                draw -= rate
        return None
