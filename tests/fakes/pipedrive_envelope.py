"""The fake Pipedrive's answer envelope: `{"success": true, "data": …, "additional_data": …}`, errors
`{"success": false, "error": "…", "error_info": "…"}`, and timestamps as Pipedrive writes them."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tests.fakes.base import FakeResponse

_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(status: int, message: str, **extra: Any) -> FakeResponse:
    return FakeResponse(status, {"success": False, "error": message, "error_info": _INFO, "data": None,
                                 "additional_data": None, **extra})


def ok(data: Any, status: int = 200, **additional: Any) -> FakeResponse:
    return FakeResponse(status, {"success": True, "data": data, **({"additional_data": additional} if additional
                                                                    else {})})
