"""The end-to-end benchmark runs on a tiny load: it prints its table, and every acknowledged event reached the fake
CRM. No timing is asserted: the benchmark is a report, and this only proves that it works."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_SERVER_URL, REDIS_URL, require_service

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS, RATE, SECONDS = 24, 10.0, 1.2


@pytest.fixture(scope="module")
def e2e_run(tmp_path_factory) -> tuple[str, dict]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    figures = tmp_path_factory.mktemp("e2e") / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.e2e", "--events", str(EVENTS), "--rate", str(RATE), "--seconds", str(SECONDS),
         "--warmup", "4", "--web-workers", "1", "--web-threads", "2", "--timeout", "120",
         "--database-url", PG_SERVER_URL, "--redis-url", REDIS_URL, "--json", str(figures)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(figures.read_text())


@pytest.mark.timeout(360)
def test_the_benchmark_prints_every_figure_against_its_target(e2e_run):
    output = e2e_run[0]
    for label in ("e2e throughput", "no-op Celery pipeline", "ratio e2e / no-op", "ack -> CRM p50",
                  "CRM calls per event, burst", "peak RSS, largest worker process", "CPU per phase"):
        assert label in output, f"no {label!r} in:\n{output}"


@pytest.mark.timeout(360)
def test_every_acknowledged_event_reached_the_crm(e2e_run):
    figures = e2e_run[1]
    assert figures["burst"]["acknowledged"] == EVENTS and figures["burst"]["missing_from_crm"] == 0
    assert figures["paced"]["acknowledged"] == round(RATE * SECONDS) and figures["paced"]["missing_from_crm"] == 0


@pytest.mark.timeout(360)
def test_the_crm_calls_and_the_memory_of_every_process_are_counted(e2e_run):
    figures = e2e_run[1]
    assert figures["burst"]["crm_calls"] > 0 and figures["noop"]["tasks"] == EVENTS
    assert all(mb > 0 for group in ("web", "workers") for _, _, mb in figures["peak_rss_mb"][group])
