"""Prometheus metrics written by the workers: event processing and the delivery engine.

Counters and histograms only, so that prometheus-client's multiprocess mode adds them up across Celery's pool
children and across processes (see ingest/metrics_files.py). What is *waiting* (events by status, deliveries by
status, circuit state, queue depth) is read from the database and the broker at scrape time instead
(ingest/state_metrics.py). The small functions below are what the pipeline and the delivery engine call.
"""
from __future__ import annotations

import time

import httpx
from prometheus_client import Counter, Histogram

SECONDS_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 8, 13, 21)

EVENTS_PROCESSED = Counter(
    "crm_ingest_events_processed_total",
    "Processing attempts of events that ended, by provider and outcome (processed, ignored, dead, skipped)",
    ["provider", "outcome"])
PROCESSING_SECONDS = Histogram(
    "crm_ingest_event_processing_seconds", "Time to process one event: parse, contact store, delivery planning",
    ["provider"], buckets=SECONDS_BUCKETS)
EVENTS_RELAYED = Counter(
    "crm_ingest_outbox_relayed_total",
    "Events the relay enqueued because their publish failed, their message was lost or their worker died")
RETENTION_PURGED = Counter(
    "crm_ingest_retention_purged_total", "Events whose raw request was removed by the retention purge")

DELIVERY_ATTEMPTS = Counter(
    "crm_ingest_delivery_attempts_total",
    "Delivery attempts by destination, outcome (succeeded, failed: retried later, dead) and reason (error class)",
    ["destination", "outcome", "reason"])
DELIVERIES_FINISHED = Counter(
    "crm_ingest_deliveries_total", "Deliveries that ended, by destination and outcome (succeeded, dead)",
    ["destination", "outcome"])
ATTEMPTS_PER_DELIVERY = Histogram(
    "crm_ingest_delivery_attempts_per_delivery", "Attempts a delivery took until it succeeded or went dead",
    ["destination", "outcome"], buckets=ATTEMPT_BUCKETS)
CRM_SECONDS = Histogram(
    "crm_ingest_crm_request_seconds", "CRM API call latency by destination and HTTP status class (2xx, 4xx, 5xx, error)",
    ["destination", "status"], buckets=SECONDS_BUCKETS)
RATE_LIMIT_WAITS = Counter(
    "crm_ingest_rate_limit_waits_total",
    "Times a delivery waited for the rate limit, by destination and cause (bucket: our shared limit, crm: the "
    "CRM answered 429 or a rate-limit body)", ["destination", "cause"])
RATE_LIMIT_WAIT_SECONDS = Counter(
    "crm_ingest_rate_limit_wait_seconds_total", "Seconds spent or scheduled waiting for the rate limit",
    ["destination", "cause"])
CIRCUIT_OPENS = Counter(
    "crm_ingest_circuit_opens_total", "Times a destination's circuit breaker opened", ["destination"])


def event_finished(provider: str, outcome: str, seconds: float) -> None:
    EVENTS_PROCESSED.labels(provider, outcome).inc()
    if outcome != "skipped":
        PROCESSING_SECONDS.labels(provider).observe(seconds)


def events_relayed(count: int) -> None:
    if count:
        EVENTS_RELAYED.inc(count)


def events_purged(count: int) -> None:
    if count:
        RETENTION_PURGED.inc(count)


def delivery_attempted(destination: str, outcome: str, reason: str | None = None) -> None:
    """One attempt's end: succeeded, failed (transient, tried again later) or dead (permanent or out of retries)."""
    DELIVERY_ATTEMPTS.labels(destination, outcome, reason or "").inc()


def delivery_finished(destination: str, outcome: str, attempts: int) -> None:
    """A delivery's end: succeeded or dead, after `attempts` attempts."""
    DELIVERIES_FINISHED.labels(destination, outcome).inc()
    ATTEMPTS_PER_DELIVERY.labels(destination, outcome).observe(attempts)


def crm_request(destination: str, seconds: float, status: int | None) -> None:
    """One HTTP call to a CRM; `status` None when no response came (timeout, connection error)."""
    CRM_SECONDS.labels(destination, f"{status // 100}xx" if status else "error").observe(seconds)


def rate_limit_waited(destination: str, seconds: float, cause: str = "bucket") -> None:
    RATE_LIMIT_WAITS.labels(destination, cause).inc()
    RATE_LIMIT_WAIT_SECONDS.labels(destination, cause).inc(max(0.0, seconds))


def circuit_opened(destination: str) -> None:
    CIRCUIT_OPENS.labels(destination).inc()


class TimedTransport(httpx.BaseTransport):
    """An httpx transport that times every call to a destination's CRM (after any rate-limit wait, so the latency
    is the CRM's own), also the calls that got no response."""

    def __init__(self, destination: str, inner: httpx.BaseTransport | None = None):
        self.destination = destination
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = self.inner.handle_request(request)
        except Exception:
            crm_request(self.destination, time.perf_counter() - started, None)
            raise
        crm_request(self.destination, time.perf_counter() - started, response.status_code)
        return response

    def close(self) -> None:
        self.inner.close()
