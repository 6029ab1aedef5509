"""Prometheus metrics of the web process, and the `/metrics` page.

The page adds up, at each scrape: the samples every process on this machine wrote (gunicorn workers, and Celery
workers without a `--metrics-port` of their own; see ingest/metrics_files.py), and the state read from the database
and the broker (ingest/state_metrics.py). Without multiprocess mode (tests, a plain `flask run`) it shows this
process's own samples instead.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector

from ingest.metrics_files import ENV, SampleFiles, web_sample_files

if TYPE_CHECKING:
    from ingest.runtime import Runtime

REQUESTS = Counter("crm_ingest_webhook_requests_total", "Webhook requests by source, provider and outcome",
                   ["source", "provider", "outcome"])
ACK_SECONDS = Histogram("crm_ingest_webhook_ack_seconds", "Time from request start to acknowledgement",
                        ["provider"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
STORE_BATCH_EVENTS = Histogram("crm_ingest_store_batch_events",
                               "Webhook requests stored per committed statement (ingest.group_commit)",
                               buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64))


class _ThisProcess(Collector):
    def collect(self):
        return REGISTRY.collect()


def render(runtime: "Runtime | None" = None, state: Callable[[], list] | None = None) -> tuple[bytes, str]:
    """The page's bytes and content type; with a runtime, the database and broker state too (read now, or as
    `state` gives it)."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(ENV):
        data_dir = runtime.settings.data_dir if runtime is not None else None
        registry.register(SampleFiles(lambda: web_sample_files(data_dir)))
    else:
        registry.register(_ThisProcess())
    if runtime is not None:
        from ingest.state_metrics import StateCollector, state_families

        registry.register(StateCollector(state or (lambda: state_families(runtime))))
    return generate_latest(registry), CONTENT_TYPE_LATEST
