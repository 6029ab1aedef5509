"""Fixtures for the operations tests: a runtime with a Jivo source beside the generic ones, parsed /metrics, and
log lines captured as the production handler writes them."""
from __future__ import annotations

import io
import json
import logging
from typing import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.logs import configure_logging
from ingest.runtime import Runtime
from tests.conftest import GENERIC_TOKEN, make_client

JIVO_SECRET = "jivo-url-secret-0123456789"
OPS_SOURCES = {
    "jivo-main": {"provider": "jivo", "url_secret": JIVO_SECRET},
    "generic-b": {"provider": "generic", "token": GENERIC_TOKEN},
}
GENERIC = {"Authorization": f"Bearer {GENERIC_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def ops_runtime(database_url, make_settings) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(database_url, sources=OPS_SOURCES))
    yield runtime
    runtime.close()


@pytest.fixture
def ops_client(ops_runtime):
    return make_client(ops_runtime)


def post_generic(client, body: dict | bytes, source: str = "generic-main"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(f"/hooks/{source}", data=data, headers=GENERIC)
    assert response.status_code == 200, response.data
    return response


def post_jivo(client, body: dict):
    response = client.post(f"/hooks/jivo-main/{JIVO_SECRET}", json=body)
    assert response.status_code == 200, response.data
    return response


Samples = dict[tuple[str, frozenset], float]


def parse_metrics(text: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse_metrics(response.get_data(as_text=True))


@pytest.fixture
def log_lines() -> Iterator[Callable[..., list]]:
    """`log_lines(log_format="json", redaction=True)` starts capturing and returns a reader of the lines so far
    (parsed JSON objects, or text lines); the root logger is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    streams: list[tuple[io.StringIO, str]] = []

    def start(log_format: str = "json", redaction: bool = True) -> Callable[[], list]:
        stream = io.StringIO()
        configure_logging(log_format, redaction, "INFO", stream=stream)
        streams.append((stream, log_format))

        def read() -> list:
            lines = stream.getvalue().splitlines()
            return [json.loads(line) for line in lines] if log_format == "json" else lines
        return read

    yield start
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
