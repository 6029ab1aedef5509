"""The ingress benchmark runs end to end on a tiny load: it prints its table and every 200 is a stored event.

No timing is asserted: the benchmark is a report, and this only proves it works.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_SERVER_URL, REDIS_URL, require_service

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUESTS, WARMUP = 30, 10


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    figures = tmp_path_factory.mktemp("bench") / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingress", "--requests", str(REQUESTS), "--warmup", str(WARMUP),
         "--seconds", "60", "--rounds", "1", "--concurrency", "2", "--workers", "1", "--threads", "2",
         "--database-url", PG_SERVER_URL, "--redis-url", REDIS_URL, "--json", str(figures)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads(figures.read_text())


@pytest.mark.timeout(300)
def test_the_benchmark_prints_both_endpoints_the_ratio_the_targets_and_the_memory(bench_run):
    output = bench_run[0].stdout
    for line_start in ("endpoint", "hello", "hooks", "ratio hooks/hello", "hooks p99", "acks after commit",
                       "peak RSS"):
        assert any(line.startswith(line_start) for line in output.splitlines()), f"no {line_start!r} line:\n{output}"
    assert "worker" in output and "master" in output


@pytest.mark.timeout(300)
def test_every_200_of_the_hooks_endpoint_is_a_stored_event(bench_run):
    figures = bench_run[1]
    assert figures["hooks"]["statuses"] == {"200": REQUESTS}
    assert figures["ok_200"] == REQUESTS + WARMUP
    assert figures["stored_events"] == figures["ok_200"]


@pytest.mark.timeout(300)
def test_every_stored_event_was_published_after_its_response(bench_run):
    figures = bench_run[1]
    assert figures["queued_events"] == figures["stored_events"]
    assert figures["unpublished_events"] == 0
