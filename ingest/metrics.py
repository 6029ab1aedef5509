"""Prometheus metrics of the web process."""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

REQUESTS = Counter("crm_ingest_webhook_requests_total", "Webhook requests by source, provider and outcome",
                   ["source", "provider", "outcome"])
ACK_SECONDS = Histogram("crm_ingest_webhook_ack_seconds", "Time from request start to acknowledgement",
                        ["provider"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))


def render() -> tuple[bytes, str]:
    """All processes' metrics when running under a multiprocess server, this process's otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
