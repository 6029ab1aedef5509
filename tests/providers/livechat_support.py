"""What the LiveChat tests share: the sources, signed samples, requests as the route builds them, and posting.

Tests that go through HTTP, the event store and processing run on SQLite and PostgreSQL (the `database_url`
parametrisation, through the `livechat` fixture of conftest.py); tests of dedup keys and of parsing call the provider
on a `RawRequest`, exactly as the route and the worker do.
"""
from __future__ import annotations

import base64
import json
from typing import Callable

from crm_sync.model import CanonicalRecord
from ingest.providers import get_provider
from ingest.providers.base import RawRequest
from ingest.settings import settings_from_dict
from tests.conftest import payload

SECRET = "lc-webhook-secret-for-tests-0123456789"
USER, PASSWORD = "livechat", "legacy-password-for-tests-0123"
BOTH, V3_ONLY, LEGACY_ONLY = "livechat-main", "livechat-v3", "livechat-legacy"
SOURCES = {
    BOTH: {"provider": "livechat", "secret_key": SECRET, "basic_auth": f"{USER}:{PASSWORD}"},
    V3_ONLY: {"provider": "livechat", "secret_key": SECRET},
    LEGACY_ONLY: {"provider": "livechat", "basic_auth": f"{USER}:{PASSWORD}"},
}
CUSTOMER = "b7eff798-f8df-4364-8059-649c35c9ed0c"  # the customer of the shared samples
provider = get_provider("livechat")


def signed(name: str, secret: str = SECRET) -> bytes:
    """A v3 sample as LiveChat sends it for a webhook registered with `secret`."""
    return payload(f"livechat/{name}").replace(b'"<secret_key>"', json.dumps(secret).encode())


def edited(name: str, change: Callable[[dict], None]) -> bytes:
    body = json.loads(signed(name) if not name.startswith("legacy_") else payload(f"livechat/{name}"))
    change(body)
    return json.dumps(body, ensure_ascii=False).encode()


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def raw(body: bytes, headers: dict[str, str] | None = None) -> RawRequest:
    return RawRequest("POST", f"/hooks/{BOTH}", "", {"Content-Type": "application/json", **(headers or {})}, body,
                      "application/json")


def key(body: bytes) -> str:
    return provider.dedup_key(raw(body))


def record(body: bytes) -> CanonicalRecord:
    records = provider.parse(raw(body))
    assert len(records) == 1
    return records[0]


def post(harness, body: bytes, source: str = BOTH, headers: dict[str, str] | None = None):
    return harness.client.post(f"/hooks/{source}", data=body,
                               headers={"Content-Type": "application/json", **(headers or {})})


def source_settings(**fields):
    return settings_from_dict({"sources": {"lc": {"provider": "livechat", **fields}}}, env={}).sources["lc"]
