"""Serving the Flask app with gunicorn, the production server, from `crm-ingest web` and `crm-ingest dev`."""
from __future__ import annotations

import gc
import importlib
import os
import shutil
from pathlib import Path

from gunicorn.app.base import BaseApplication

from workers.cpu_affinity import assign_cpu, pin_to_assigned_cpu
from workers.protocol_errors import answer_protocol_errors_in_json
from workers.slow_clients import READ_TIMEOUT_SECONDS, bounded_reads_worker

# gunicorn's default line without the query string: Roistat sends its credential (`token`) as a query parameter.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'
# "module:callable" building the WSGI app in each worker; another one serves other apps with the very same settings
# (the ingress benchmark's hello-world baseline).
DEFAULT_APP_FACTORY = "ingest.app:create_app"


class GunicornServer(BaseApplication):
    def __init__(self, options: dict, app_factory: str = DEFAULT_APP_FACTORY):
        self.options = options
        self.app_factory = app_factory
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        module, _, name = self.app_factory.partition(":")
        return getattr(importlib.import_module(module), name)()


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _post_worker_init(worker) -> None:
    """The crm-ingest app publishes from a background thread of each worker, in batches; and the objects the app
    was built from leave the garbage collector's view.

    They live as long as the worker, yet every full collection walked all of them (about 140 000: SQLAlchemy,
    Celery, pydantic, psycopg…), holding the GIL for some 50 ms every few thousand requests (gc.freeze, the
    garbage collector's documented way of excluding them).
    """
    gc.freeze()
    runtime = getattr(worker.wsgi, "extensions", {}).get("crm_ingest")
    if runtime is not None:
        runtime.outbox.start_background_publisher()


def _worker_exit(server, worker) -> None:
    """Publish whatever the background thread still holds before the worker goes."""
    runtime = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("crm_ingest")
    if runtime is not None:
        runtime.outbox.stop_background_publisher()


def prepare_metrics_dir(data_dir: Path) -> None:
    """Prometheus multiprocess mode: every gunicorn worker writes its samples where /metrics reads them all."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = data_dir / "metrics-web"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def serve(host: str, port: int, workers: int, threads: int, data_dir: Path,
          app_factory: str = DEFAULT_APP_FACTORY, cpu_affinity: bool = True,
          read_timeout: float = READ_TIMEOUT_SECONDS) -> None:
    prepare_metrics_dir(data_dir)
    answer_protocol_errors_in_json()
    GunicornServer(gunicorn_options(host, port, workers, threads, cpu_affinity, read_timeout), app_factory).run()


def gunicorn_options(host: str, port: int, workers: int, threads: int, cpu_affinity: bool = True,
                     read_timeout: float = READ_TIMEOUT_SECONDS) -> dict:
    """The production server settings of `crm-ingest web`; with `cpu_affinity`, one CPU per worker
    (workers.cpu_affinity); each read of a request waits at most `read_timeout` for the client
    (workers.slow_clients)."""
    pinning = {"pre_fork": assign_cpu, "post_fork": pin_to_assigned_cpu} if cpu_affinity else {}
    return {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",  # an IPv6 address in brackets, as in URLs
        "workers": workers,
        "threads": threads,
        "worker_class": bounded_reads_worker(threads, read_timeout),
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": "workers.gunicorn_logger.GunicornLogger",  # through crm-ingest's JSON, redacted logging
        "child_exit": _child_exit,
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
        "control_socket_disable": True,  # one per host by default: two servers on a machine would clash
        **pinning,
    }
