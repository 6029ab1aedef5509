"""Where processes write their Prometheus samples, and which of them a `/metrics` page adds up.

prometheus-client's multiprocess mode: every process (gunicorn worker, Celery pool child) writes its counters and
histograms to files in PROMETHEUS_MULTIPROC_DIR, and a collector adds the files up. On one machine, under the data
directory:

- `metrics-web/`: the gunicorn workers of `crm-ingest web` (emptied when the web starts);
- `metrics-worker/<pid>/`: one `crm-ingest worker` and its pool children (emptied of dead workers' folders at start);
- `metrics-worker/<pid>-port-<port>/`: a worker that serves its own `/metrics` (`--metrics-port`), for machines
  without a web process; the web leaves it out, so no sample is ever counted by two scrape targets;
- `metrics-worker/archive/`: the counters, histograms and summaries of the workers without a port that have ended,
  added up. A counter on the web's page adds up every worker, so dropping one worker's files when it restarts
  would make the sum go down, and Prometheus reads any decrease as a reset (rate() then counts the whole remaining
  sum again). Gauges of ended processes are dropped: they described a process that is gone.

The web's `/metrics` adds up its own folder and every worker folder without a port: on a single machine one scrape
target shows everything. An operator who sets PROMETHEUS_MULTIPROC_DIR for all processes gets one shared folder
instead, which they empty on deploy.
"""
from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_FOLDERS = "metrics-worker"
PORT_MARK = "-port-"
ARCHIVE = "archive"
# Held exclusively while ended workers' samples move into the archive, shared while the web reads the samples:
# a scrape never sees a worker's counters twice (archived and still in its folder) or not at all.
LOCK_FILE = ".lock"
KEPT_KINDS = ("counter", "histogram", "summary")  # only ever grow: an ended process's share stays in the sums
log = logging.getLogger(__name__)


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
    with _locked(parent, fcntl.LOCK_EX):
        for folder in parent.iterdir():
            pid = folder.name.split("-", 1)[0]
            if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
                if PORT_MARK not in folder.name:  # a worker with a port was its own scrape target: a reset there
                    _archive(folder, parent / ARCHIVE)
                shutil.rmtree(folder, ignore_errors=True)


def _archive(folder: Path, archive: Path) -> None:
    """Add the folder's counters, histograms and summaries to the archive's, one file per kind."""
    archive.mkdir(exist_ok=True)
    for kind in KEPT_KINDS:
        files = sorted(folder.glob(f"{kind}_*.db"))
        if files:
            _add_up(archive / f"{kind}_{ARCHIVE}.db", files)


def _add_up(target: Path, files: list[Path]) -> None:
    """Write target anew with each sample summed over target and files; replaced at once, never half-written."""
    totals: dict[str, list[float]] = {}
    for path in ([target] if target.exists() else []) + files:
        try:
            samples = list(MmapedDict.read_all_values_from_file(str(path)))
        except (OSError, RuntimeError) as exc:  # a file its process left corrupt: the web could not read it either
            log.warning("metrics: leaving out %s: %s", path, exc)
            continue
        for key, value, timestamp, _ in samples:
            total = totals.setdefault(key, [0.0, 0.0])
            total[0] += value
            total[1] = max(total[1], timestamp)
    staged = target.with_name(target.name + ".new")  # not *.db: no scrape reads it
    staged.unlink(missing_ok=True)
    written = MmapedDict(str(staged))
    try:
        for key, (value, timestamp) in totals.items():
            written.write_value(key, value, timestamp)
    finally:
        written.close()
    os.replace(staged, target)


@contextmanager
def _locked(parent: Path, mode: int) -> Iterator[None]:
    try:
        handle = open(parent / LOCK_FILE, "a")
    except OSError:  # a folder this process may not write to: reading without the lock is the old behaviour
        yield
        return
    with handle:
        fcntl.flock(handle, mode)
        yield


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
        files = self.list_files()
        worker_folders = {Path(path).parent.parent for path in files}
        worker_folders = {folder for folder in worker_folders if folder.name == WORKER_FOLDERS}
        if not worker_folders:
            return MultiProcessCollector.merge(files, accumulate=True)
        with ExitStack() as locks:
            for folder in sorted(worker_folders):
                locks.enter_context(_locked(folder, fcntl.LOCK_SH))
            # Listed again under the lock: a worker may have archived an ended one's files since.
            return MultiProcessCollector.merge(self.list_files(), accumulate=True)


def folder_files(folder: Path):
    return lambda: _db_files([str(folder)])
