"""How the fake Kommo says no: errors as problem+json (400 with `validation-errors`), and the two 403s of an IP
Kommo will not serve.

After too many requests Kommo blocks the integration's IP with a 403 (`ip_blocked()`); a 403 for an IP missing from
the account's whitelist carries error code 113 (`ip_not_whitelisted()`).
"""
from __future__ import annotations

import time
from typing import Any

from tests.fakes.base import FakeResponse
from tests.fakes.faults import Fault


def problem(status: int, title: str, **extra: Any) -> FakeResponse:
    return FakeResponse(status, {"title": title, "type": f"https://httpstatus.es/{status}", "status": status,
                                 "detail": extra.pop("detail", title), **extra},
                        content_type="application/problem+json")


def ip_blocked(match: str | None = None) -> Fault:
    """The IP restriction Kommo puts on an integration that keeps exceeding its limit: a 403 without an error code."""
    return Fault.respond(403, {"title": "Forbidden", "type": "https://httpstatus.es/403", "status": 403,
                               "detail": "Forbidden"}, match, content_type="application/problem+json")


def ip_not_whitelisted(match: str | None = None) -> Fault:
    """An account that lets the API in only from whitelisted IPs, called from another: 403 with error code 113."""
    return Fault.respond(403, {"response": {"error": "Access to this account is prohibited from your IP address",
                                            "error_code": "113", "ip": "127.0.0.1", "domain": "acme.kommo.com",
                                            "server_time": int(time.time())}}, match)


def invalid(request_id: str, path: str, detail: str) -> FakeResponse:
    """Kommo's 400 for a request it refuses, naming the request and the path of the refused value."""
    return problem(400, "Bad Request", detail="Request validation failed", **{"validation-errors": [
        {"request_id": request_id, "errors": [{"code": "NotSupportedChoice", "path": path, "detail": detail}]}]})
