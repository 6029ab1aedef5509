"""Task definitions: thin wrappers that load ids and call plain functions."""
from __future__ import annotations

import logging

from celery import Celery

from crm_sync.pipeline import TRANSIENT_DB_ERRORS, process_event
from crm_sync.store import StoreOptions
from ingest.outbox import MAINTENANCE_QUEUE, PROCESS_EVENT_TASK, RELAY_TASK

log = logging.getLogger(__name__)


def register_tasks(app: Celery) -> None:
    runtime = app.runtime
    store_options = StoreOptions.from_settings(runtime.settings)

    # shared=False: a task bound to this runtime must not be copied into other Celery apps of the process.
    @app.task(shared=False, name=PROCESS_EVENT_TASK, autoretry_for=TRANSIENT_DB_ERRORS, retry_backoff=True, retry_backoff_max=60,
              max_retries=5)
    def process_event_task(event_id: int) -> str:
        outcome = process_event(runtime.sessions, event_id, runtime.settings.max_process_attempts, store_options)
        log.info("event %s: %s", event_id, outcome)
        return outcome.value

    @app.task(shared=False, name=RELAY_TASK, queue=MAINTENANCE_QUEUE)
    def relay_outbox_task() -> int:
        return runtime.outbox.relay()
