"""Where processes write their Prometheus samples, and which of them a `/metrics` page adds up.

prometheus-client's multiprocess mode: every process (gunicorn worker, Celery pool child) writes its counters and
histograms to files in PROMETHEUS_MULTIPROC_DIR, and a collector adds the files up. On one machine, under the data
directory:

- `metrics-web/`: the gunicorn workers of `crm-ingest web` (emptied when the web starts);
- `metrics-worker/<pid>/`: one `crm-ingest worker` and its pool children (emptied of dead workers' folders at start);
- `metrics-worker/<pid>-port-<port>/`: a worker that serves its own `/metrics` (`--metrics-port`), for machines
  without a web process; the web leaves it out, so no sample is ever counted by two scrape targets.

The web's `/metrics` adds up its own folder and every worker folder without a port: on a single machine one scrape
target shows everything. An operator who sets PROMETHEUS_MULTIPROC_DIR for all processes gets one shared folder
instead, which they empty on deploy.
"""
from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_FOLDERS = "metrics-worker"
PORT_MARK = "-port-"


def use_folder(folder: Path) -> None:
    """Make this process (and the children it forks afterwards) write its samples into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(folder.resolve())
    from prometheus_client import values

    # Metrics created from now on write files, even if prometheus_client was imported before the variable was set.
    values.ValueClass = values.get_value_class()


def prepare_worker_folder(data_dir: Path, metrics_port: int | None = None) -> Path:
    """The folder of this worker process; an operator's PROMETHEUS_MULTIPROC_DIR is used as it is."""
    if os.environ.get(ENV):
        folder = Path(os.environ[ENV])
        use_folder(folder)
        return folder
    parent = data_dir / WORKER_FOLDERS
    _remove_dead_workers(parent)
    name = f"{os.getpid()}{PORT_MARK}{metrics_port}" if metrics_port else str(os.getpid())
    folder = parent / name
    shutil.rmtree(folder, ignore_errors=True)
    use_folder(folder)
    return folder


def _remove_dead_workers(parent: Path) -> None:
    if not parent.is_dir():
        return
    for folder in parent.iterdir():
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def web_sample_files(data_dir: Path | None) -> list[str]:
    """The web's own samples and those of the workers on this machine that have no scrape target of their own."""
    folders = [os.environ[ENV]] if os.environ.get(ENV) else []
    workers = data_dir / WORKER_FOLDERS if data_dir is not None else None
    if workers is not None and workers.is_dir():
        folders += [str(f) for f in sorted(workers.iterdir()) if PORT_MARK not in f.name and f.is_dir()]
    return _db_files(dict.fromkeys(os.path.realpath(folder) for folder in folders))


def _db_files(folders) -> list[str]:
    return [path for folder in folders for path in sorted(glob.glob(os.path.join(folder, "*.db")))]


class SampleFiles(Collector):
    """Adds up the multiprocess sample files that `list_files()` names at each scrape."""

    def __init__(self, list_files):
        self.list_files = list_files

    def collect(self):
        return MultiProcessCollector.merge(self.list_files(), accumulate=True)


def folder_files(folder: Path):
    return lambda: _db_files([str(folder)])
