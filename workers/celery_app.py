"""The Celery app, configured from the same settings as the web, with the reliability settings of DESIGN.md.

`celery -A workers.celery_app` (used by `crm-ingest worker|beat` and Flower) loads the settings from the environment.
"""
from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from celery import Celery
from celery.schedules import crontab
from kombu import Queue

from crm_sync.delivery.wake import DELIVER_QUEUE, DRAIN_TASK, SCHEDULE_TASK
from ingest.outbox import INGEST_QUEUE, MAINTENANCE_QUEUE, RELAY_TASK
from ingest.retention import PURGE_TASK

if TYPE_CHECKING:
    from ingest.runtime import Runtime
    from ingest.settings import Settings

# Longer than any countdown we use, so Redis never hands a task to a second worker while the first still has it;
# lost messages are the relay's job, not the visibility timeout's.
VISIBILITY_TIMEOUT_SECONDS = 3600
# (soft, hard) seconds: a task that waits on a database or broker gone silent is stopped (soft: an exception in the
# task; hard: its pool process replaced) instead of holding its pool process, and with it every later relay pass,
# for good. The relay and the delivery sweep take well under a second when healthy; the daily purge works in
# committed batches, so a stopped run loses one batch, and ends before Redis's visibility timeout would hand it to a
# second worker. A drain ends its own run after about 30 s, but a CRM (or a proxy) that answers a byte at a time is
# never timed out by httpx, whose timeouts bound each read: the soft limit ends such a call as a transient failure of
# its deliveries (internal_error), recorded, and the lease released.
TASK_TIME_LIMITS = {RELAY_TASK: (50, 60), SCHEDULE_TASK: (50, 60), PURGE_TASK: (3000, 3300), DRAIN_TASK: (240, 300)}


def create_celery(runtime: "Runtime") -> Celery:
    settings = runtime.settings
    app = Celery("crm_ingest", set_as_current=False)
    app.conf.update(
        broker_url=_broker_url(settings),
        broker_transport_options=_transport_options(runtime),
        broker_connection_timeout=settings.publish_timeout_seconds,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # When the broker connection drops, a running task finishes rather than being cancelled (Celery 6 will
        # cancel by default): its message is redelivered, on RabbitMQ at once, and the second run finds the work done
        # in the database; cancelling would spend one of max_process_attempts on every connection loss.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=INGEST_QUEUE,
        task_queues=[Queue(INGEST_QUEUE), Queue(DELIVER_QUEUE), Queue(MAINTENANCE_QUEUE)],
        task_create_missing_queues=True,
        worker_hijack_root_logger=False,
        task_annotations={name: {"soft_time_limit": soft, "time_limit": hard}
                          for name, (soft, hard) in TASK_TIME_LIMITS.items()},
        worker_send_task_events=True,
        task_send_sent_event=True,
        beat_schedule={
            "relay-outbox": {"task": RELAY_TASK, "schedule": settings.relay_interval_seconds,
                             "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.relay_interval_seconds}},
            "schedule-deliveries": {"task": SCHEDULE_TASK, "schedule": settings.delivery_sweep_interval_seconds,
                                    "options": {"queue": MAINTENANCE_QUEUE,
                                                "expires": settings.delivery_sweep_interval_seconds}},
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        timezone="UTC",
    )
    if settings.retention_days:
        app.conf.beat_schedule["purge-raw-requests"] = {
            "task": PURGE_TASK, "schedule": crontab(minute=17, hour=3), "options": {"queue": MAINTENANCE_QUEUE}}
    app.runtime = runtime
    from workers.tasks import register_tasks

    register_tasks(app)
    return app


def _broker_url(settings: "Settings") -> str:
    """The broker URL kombu is given. kombu warns "No hostname was supplied. Reverting to default 'localhost'" each
    time it describes a connection whose URL has none, as the embedded broker's `filesystem://` has not; the
    filesystem transport ignores the host, and with the one kombu would use written in, the connection is the same
    (same parameters, same filesystem://:**@localhost// in the worker's banner) without the warning."""
    parts = urlsplit(settings.broker_url)
    if settings.uses_embedded_broker and not parts.netloc:
        return parts._replace(netloc="localhost").geturl()
    return settings.broker_url


def _transport_options(runtime: "Runtime") -> dict:
    settings = runtime.settings
    timeout = settings.publish_timeout_seconds
    if settings.uses_embedded_broker:
        folder = settings.data_dir / "broker"
        control = settings.data_dir / "broker-control"  # kombu's default is ./control in the working directory
        folder.mkdir(parents=True, exist_ok=True)
        control.mkdir(parents=True, exist_ok=True)
        return {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(control),
                "store_processed": False}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        options = {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS, "socket_connect_timeout": timeout,
                   "socket_timeout": max(timeout, 5.0), "max_retries": 0}
        if settings.broker_key_prefix:
            options["global_keyprefix"] = settings.broker_key_prefix
        return options
    # RabbitMQ (AMQP) needs no visibility timeout: it hands an unacknowledged message back the moment its consumer's
    # connection closes. Its consumer_timeout (30 min by default) is far beyond any task here: a drain stops after
    # 30 s, a retry's countdown is at most 60 s. Publisher confirms are the ingress publisher's (task_publisher.py).
    return {"max_retries": 0}


_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """`app` is built on first use, so importing this module reads no settings (PEP 562 module attribute)."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        from ingest.runtime import Runtime

        _app = Runtime.from_environment().celery
    return _app
