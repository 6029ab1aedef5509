"""Task definitions: thin wrappers that load ids and call plain functions."""
from __future__ import annotations

import gc
import importlib
import logging

from celery import Celery
from celery.signals import worker_init, worker_process_init

from crm_sync.delivery.wake import DELIVER_QUEUE, DRAIN_TASK, SCHEDULE_TASK
from crm_sync.metrics import events_relayed
from crm_sync.pipeline import TRANSIENT_DB_ERRORS, process_events
from crm_sync.store import StoreOptions
from ingest.outbox import MAINTENANCE_QUEUE, PROCESS_EVENTS_TASK, RELAY_TASK
from ingest.retention import PURGE_TASK, run_retention

log = logging.getLogger(__name__)


def register_tasks(app: Celery) -> None:
    runtime = app.runtime
    store_options = StoreOptions.from_settings(runtime.settings)

    # shared=False: a task bound to this runtime must not be copied into other Celery apps of the process.
    @app.task(shared=False, name=PROCESS_EVENTS_TASK, autoretry_for=TRANSIENT_DB_ERRORS, retry_backoff=True, retry_backoff_max=60,
              max_retries=5)
    def process_events_task(event_ids: list[int]) -> list[str]:
        """A retry after a transient error skips the events already finished."""
        planned: set[str] = set()
        outcomes = process_events(runtime.sessions, event_ids, runtime.settings.max_process_attempts, store_options,
                                  planned_for=planned)
        runtime.delivery.wake(planned)
        return [outcome.value for outcome in outcomes]

    @app.task(shared=False, name=RELAY_TASK, queue=MAINTENANCE_QUEUE)
    def relay_outbox_task() -> int:
        relayed = runtime.outbox.relay()
        events_relayed(relayed)
        return relayed

    @app.task(shared=False, name=PURGE_TASK, queue=MAINTENANCE_QUEUE)
    def purge_raw_requests_task() -> int:
        report = run_retention(runtime.sessions, runtime.settings.retention_days)
        return report.events if report else 0

    @app.task(shared=False, name=DRAIN_TASK, queue=DELIVER_QUEUE)
    def drain_destination_task(name: str) -> str:
        report = runtime.delivery.drain(name)
        log.info("drain %s: %s succeeded, %s failed, %s dead in %s batch(es); %s", name, report.succeeded,
                 report.failed, report.dead, report.batches, report.stopped)
        if report.more_due:   # the time budget ran out: a fresh task continues, after whatever else is queued
            runtime.delivery.wake([name])
        return report.stopped

    @app.task(shared=False, name=SCHEDULE_TASK, queue=MAINTENANCE_QUEUE)
    def schedule_deliveries_task() -> list[str]:
        return runtime.delivery.schedule()


@worker_init.connect
def _load_before_the_pool_forks(sender=None, **_) -> None:
    runtime = getattr(getattr(sender, "app", None), "runtime", None)
    if runtime is not None:
        preload_for_pool(runtime)


@worker_process_init.connect
def _freeze_what_the_pool_process_starts_with(**_) -> None:
    """Each pool process leaves the objects it was forked with out of the garbage collector's view (gc.freeze).

    About 140 000 of them (SQLAlchemy, Celery, pydantic, the providers' and CRMs' modules) live as long as the process,
    and every full collection walked them all; processing an event allocates enough to trigger one every few
    hundred events. Frozen, the end-to-end benchmark's workers spent 1.5-1.6 against 1.8 ms of CPU per event and the
    pipeline carried 518-532 against 459-461 events/s (alternating runs)."""
    gc.freeze()


def preload_for_pool(runtime) -> None:
    """Import in the worker's main process what every pool process needs (the providers' and CRMs' modules are in
    already: the settings check loaded them). Otherwise each pool process imports it on its first delivery: the
    delivery engine, and httpcore, which httpx imports only when the first client is built and which brings trio
    along where that is installed. A few hundred milliseconds of CPU per process after every start, and memory that
    the forked processes could have shared."""
    importlib.import_module("httpcore")
    runtime.delivery  # noqa: B018  (builds the delivery engine, importing its modules)
