"""The client address an event records: the connection's own, or behind `trusted_proxy_hops` proxies the one they
put in X-Forwarded-For; a client's own X-Forwarded-For is never believed."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from ingest.runtime import Runtime
from ingest.schema import Event
from tests.conftest import make_client


@pytest.fixture
def post_through(database_url, make_settings, generic_headers):
    runtimes: list[Runtime] = []

    def post(forwarded_for: str | None, hops: int = 0) -> str:
        runtime = Runtime(make_settings(database_url, trusted_proxy_hops=hops))
        runtimes.append(runtime)
        headers = {**generic_headers, **({"X-Forwarded-For": forwarded_for} if forwarded_for else {})}
        assert make_client(runtime).post("/hooks/generic-main", data=b'{"n": 1}', headers=headers).status_code == 200
        with runtime.sessions() as session:
            return session.scalar(select(Event.remote_addr).order_by(Event.id.desc()).limit(1))

    yield post
    for runtime in runtimes:
        runtime.close()


def test_without_trusted_proxies_the_connections_own_address_is_recorded(post_through):
    assert post_through("203.0.113.7") == "127.0.0.1"


def test_behind_one_trusted_proxy_the_address_it_forwarded_is_recorded(post_through):
    assert post_through("203.0.113.7", hops=1) == "203.0.113.7"


def test_an_address_the_client_put_in_front_of_the_proxys_is_not_believed(post_through):
    assert post_through("198.51.100.66, 203.0.113.7", hops=1) == "203.0.113.7"
