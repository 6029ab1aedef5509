"""`crm-ingest worker` and `crm-ingest beat` processes for the end-to-end benchmark and the chaos run: started in a
session of their own (so a Celery main process and its pool children can be killed together), watched through /proc,
restartable."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.servers import REPO_ROOT, ProcessMemory, Server, children_of, cpu_seconds_of, memory_of
from workers.cli import DEFAULT_WEB_THREADS

START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 25


class WorkerProcess:
    """One `crm-ingest worker --concurrency N` (a Celery main process and N prefork children).

    `extra_args` go to Celery as they do on the command line (`--include bench.noop` adds the baseline's task).
    Peak RSS is kept per process across restarts, so a process that was killed still counts.
    """

    def __init__(self, name: str, config: Path, workdir: Path, concurrency: int, extra_args: tuple[str, ...] = ()):
        self.name, self.config, self.concurrency, self.extra_args = name, config, concurrency, extra_args
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self._log_offset = 0
        self.starts = 0
        self._peaks: dict[int, ProcessMemory] = {}
        self._retired_cpu_seconds = 0.0

    def start(self) -> "WorkerProcess":
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL",
                                                                  "PROMETHEUS_MULTIPROC_DIR")}
        env["CRM_INGEST_CONFIG"] = str(self.config)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "workers.cli", *self.arguments()]
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.starts += 1
        return self

    def arguments(self) -> list[str]:
        return ["worker", "--concurrency", str(self.concurrency), "--hostname", f"{self.name}.{self.starts}@%h",
                "--without-gossip", "--without-mingle", *self.extra_args]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Until the pool has all its children and the log says the worker is ready (or fail with the log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if len(children_of(self.process.pid)) >= self.concurrency and self._logged_ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} did not start within {timeout:g}s:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        if not self.running:
            return []
        return [self.process.pid, *children_of(self.process.pid)]

    def sample(self) -> None:
        """Remember each live process's peak RSS (call before a kill, and now and then)."""
        if not self.running:
            return
        roles = [("main", self.process.pid)] + [("child", pid) for pid in children_of(self.process.pid)]
        for role, pid in roles:
            if (memory := memory_of(role, pid)) is not None:
                self._peaks[pid] = memory

    def memory(self) -> list[ProcessMemory]:
        """Peak RSS of every process this worker has had, live ones read now."""
        self.sample()
        return list(self._peaks.values())

    def cpu_seconds(self) -> float:
        """CPU time of the live processes (main and children), plus that of incarnations killed or stopped."""
        return self._retired_cpu_seconds + sum(cpu_seconds_of(pid) for pid in self.pids())

    def kill(self) -> None:
        """SIGKILL the main process and its pool children at once, as the OOM killer or a lost machine would."""
        if not self.running:
            return
        self.sample()
        self._retired_cpu_seconds += sum(cpu_seconds_of(pid) for pid in self.pids())
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM: finish the current tasks), SIGKILL if it takes too long."""
        if not self.running:
            return
        self.sample()
        self._retired_cpu_seconds += sum(cpu_seconds_of(pid) for pid in self.pids())
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        _reap_group(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    ready_mark = b" ready."   # Celery's "celery@host ready." line: the consumer is connected, the pool is up

    def _logged_ready(self) -> bool:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                return self.ready_mark in log.read()
        except OSError:
            return False


class BeatProcess(WorkerProcess):
    """`crm-ingest beat`: the outbox relay and the delivery sweep on their schedules (it has no pool)."""

    ready_mark = b"beat: Starting"

    def __init__(self, name: str, config: Path, workdir: Path):
        super().__init__(name, config, workdir, concurrency=0)

    def arguments(self) -> list[str]:
        return ["beat", *self.extra_args]


def _reap_group(pgid: int) -> None:
    """Pool children outlive a main process killed mid-shutdown: end the rest of the group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Deployment:
    """The crm-ingest processes of one run on loopback: `crm-ingest web` (gunicorn), workers and, if asked, beat,
    all reading the same config file, as a small production deployment runs them."""

    def __init__(self, config: Path, workdir: Path, *, web_workers: int = 2, web_threads: int = DEFAULT_WEB_THREADS,
                 workers: int = 1, concurrency: int = 2, beat: bool = False):
        self.config = config
        self.web = Server("web", "ingest.app:create_app", web_workers, web_threads, workdir,
                          env={"CRM_INGEST_CONFIG": str(config)})
        self.workers = [WorkerProcess(f"worker{i}", config, workdir, concurrency) for i in range(workers)]
        self.beat = BeatProcess("beat", config, workdir) if beat else None

    @property
    def celery_processes(self) -> list[WorkerProcess]:
        return [*self.workers, *([self.beat] if self.beat else [])]

    def start(self) -> None:
        """Every process up and ready; if one is not, whatever did start is stopped before the error goes on: the
        workers run in sessions of their own and would outlive the run."""
        try:
            for process in self.celery_processes:
                process.start()
            self.web.wait_ready("/healthz")
            for process in self.celery_processes:
                process.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.web.stop()
        for process in reversed(self.celery_processes):
            process.stop()

    def worker_cpu_seconds(self) -> float:
        return sum(worker.cpu_seconds() for worker in self.workers)

    def log_tails(self) -> str:
        return "\n".join(f"--- {process.name} log tail ---\n{process.log_tail()}"
                         for process in [*self.celery_processes, self.web])

    def cli(self, *arguments: str) -> str:
        """`crm-ingest <arguments>` as an operator runs it on this deployment's config; its output."""
        env = {**os.environ, "CRM_INGEST_CONFIG": str(self.config)}
        done = subprocess.run([sys.executable, "-m", "workers.cli", *arguments], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"crm-ingest {' '.join(arguments)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout.strip()
