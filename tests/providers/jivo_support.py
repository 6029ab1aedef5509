"""What the Jivo tests share: the source behind its secret URL, the samples, posting them, and parsing them on a
`RawRequest` as the worker does.

Tests that go through HTTP run on SQLite and PostgreSQL (the `database_url` parametrisation, through the `jivo`
fixture of conftest.py); parsing tests need no database.
"""
from __future__ import annotations

import json

from crm_sync.model import CanonicalRecord
from ingest.providers import RawRequest, get_provider
from tests.conftest import payload

SECRET = "jivo-url-secret-for-tests-0123456789"
URL = f"/hooks/jivo-main/{SECRET}"
SOURCES = {"jivo-main": {"provider": "jivo", "url_secret": SECRET}}
JSON = {"Content-Type": "application/json"}
OK = {"result": "ok"}
provider = get_provider("jivo")


def post(harness, body: bytes | dict, url: str = URL):
    data = json.dumps(body, ensure_ascii=False).encode() if isinstance(body, dict) else body
    return harness.client.post(url, data=data, headers=JSON)


def sample(name: str) -> dict:
    return json.loads(payload(f"jivo/{name}"))


def request_of(body: bytes | dict) -> RawRequest:
    data = json.dumps(body, ensure_ascii=False).encode() if isinstance(body, dict) else body
    return RawRequest(method="POST", path="/hooks/jivo-main/secret", query_string="", headers={}, body=data,
                      content_type="application/json")


def parse_one(body: bytes | dict) -> CanonicalRecord:
    records = provider.parse(request_of(body))
    assert len(records) == 1
    return records[0]


def identities(record: CanonicalRecord) -> dict[str, str]:
    return {identity.kind: identity.value for identity in record.person.identities}
