"""Serving the Flask app with gunicorn, the production server, from `crm-ingest web` and `crm-ingest dev`."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from gunicorn.app.base import BaseApplication

# gunicorn's default line without the query string: Roistat sends its credential (`token`) as a query parameter.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'


class GunicornServer(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from ingest.app import create_app

        return create_app()


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def prepare_metrics_dir(data_dir: Path) -> None:
    """Prometheus multiprocess mode: every gunicorn worker writes its samples where /metrics reads them all."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = data_dir / "metrics-web"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def serve(host: str, port: int, workers: int, threads: int, data_dir: Path) -> None:
    prepare_metrics_dir(data_dir)
    GunicornServer({
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "child_exit": _child_exit,
        "control_socket_disable": True,  # one per host by default: two servers on a machine would clash
    }).run()
