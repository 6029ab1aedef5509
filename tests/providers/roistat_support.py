"""Roistat test helpers: the test source's credentials and the sample requests re-signed for it.

The samples in tests/payloads/roistat/ carry the token of the account they were written for; each test re-signs them
with the test source's token, so the rest of the request stays byte for byte what Roistat sends.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from ingest.providers.base import RawRequest
from tests.conftest import payload

SOURCE = "roistat-main"
USER = "roistat"
PASSWORD = "roistat-test-password-0123456789"
TOKEN = hashlib.md5((USER + PASSWORD).encode()).hexdigest()
SOURCES = {SOURCE: {"provider": "roistat", "user": USER, "password": PASSWORD}}
HOOK = f"/hooks/{SOURCE}"
_TOKEN_PARAM = re.compile(r"(?<![A-Za-z0-9_])token=[0-9a-f]{32}")


def sample(name: str, token: str = TOKEN) -> str:
    """A sample query string (or form body), signed with `token`."""
    text = payload(f"roistat/{name}").decode("utf-8").rstrip("\n")
    return _TOKEN_PARAM.sub(f"token={token}", text)


def with_param(query: str, name: str, value: str) -> str:
    """The query with one parameter's raw value replaced (the others untouched)."""
    pattern = re.compile(rf"(^|&){re.escape(name)}=[^&]*")
    assert pattern.search(query), f"{name} is not in the query"
    return pattern.sub(lambda m: f"{m.group(1)}{name}={value}", query)


def get_request(query: str) -> RawRequest:
    return RawRequest(method="GET", path=HOOK, query_string=query, headers={}, body=b"")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)
