"""What the Rocket.Chat tests share: the source and its Secret Token, the samples, requests as the route builds
them, and posting.

Tests that go through HTTP and the event store run on SQLite and PostgreSQL (the `database_url` parametrisation,
through the `rocket` fixture of conftest.py); tests of the dedup key and of parsing call the provider directly on a
`RawRequest`, exactly what the route and the worker call.
"""
from __future__ import annotations

import json

from crm_sync.model import CanonicalRecord
from ingest.providers import get_provider
from ingest.providers.base import RawRequest
from tests.conftest import PAYLOADS, payload

TOKEN = "0c4f5e9b-secret-from-Livechat_secret_token"  # as in the samples' .headers files
SOURCE = "rocket-main"
SOURCES = {SOURCE: {"provider": "rocketchat", "token": TOKEN}}
provider = get_provider("rocketchat")


def body_of(name: str) -> dict:
    return json.loads(payload(f"rocketchat/{name}"))


def recorded_headers(stem: str) -> dict[str, str]:
    """Headers recorded with a sample (`<stem>.headers`)."""
    lines = (PAYLOADS / "rocketchat" / f"{stem}.headers").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


# What a Rocket.Chat server with our Secret Token sends.
SIGNED = {"Content-Type": "application/json", "X-RocketChat-Livechat-Token": TOKEN}


def raw(body: bytes | dict) -> RawRequest:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return RawRequest("POST", f"/hooks/{SOURCE}", "", {"Content-Type": "application/json"}, data, "application/json")


def key(body: bytes | dict) -> str:
    return provider.dedup_key(raw(body))


def record(name_or_body: str | dict) -> CanonicalRecord:
    body = body_of(name_or_body) if isinstance(name_or_body, str) else name_or_body
    records = provider.parse(raw(body))
    assert len(records) == 1
    return records[0]


def changed(name: str, **fields) -> dict:
    return {**body_of(name), **fields}


def post(harness, body: str | dict | bytes, headers: dict[str, str] = SIGNED):
    """A sample file's bytes as they are, a changed body, or raw bytes."""
    data = payload(f"rocketchat/{body}") if isinstance(body, str) else body
    data = json.dumps(data, ensure_ascii=False).encode() if isinstance(data, dict) else data
    return harness.client.post(f"/hooks/{SOURCE}", data=data, headers=headers)


ALL_SAMPLES = sorted(p.name for p in (PAYLOADS / "rocketchat").glob("*.json") if p.name != "webhook_test.json")
