"""A webhook receiver: stores each delivery once per `webhook-id`, as the Standard Webhooks spec asks receivers to."""
from __future__ import annotations

import re
from typing import Any, Callable

from tests.fakes.base import FakeCRM, FakeRequest, FakeResponse


class WebhookReceiver(FakeCRM):
    """Serves `path` only, exactly as written: `/hooks/crm/` (a trailing slash, as many frameworks route) does not
    answer a POST to `/hooks/crm`, nor the other way round."""

    vendor = "webhook"

    def __init__(self, path: str = "/hooks/crm") -> None:
        super().__init__()
        self.received: list[FakeRequest] = []          # every request, duplicates included
        self.deliveries: dict[str, dict[str, Any]] = {}  # webhook-id -> the first body received with it
        # The answer to each delivery: a body, or a function of the request that makes one (a reply per person).
        self.reply: dict[str, Any] | Callable[[FakeRequest], Any] = {"ok": True}
        self.route("POST", re.escape(path), self._receive)

    def _receive(self, request: FakeRequest) -> FakeResponse:
        self.received.append(request)
        self.deliveries.setdefault(request.header("webhook-id"), request.json())
        return FakeResponse(200, self.reply(request) if callable(self.reply) else self.reply)

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        return FakeResponse(429, {"error": "slow down"}, headers)

    def server_error(self) -> FakeResponse:
        return FakeResponse(503, {"error": "maintenance"})
