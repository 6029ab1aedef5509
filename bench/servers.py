"""gunicorn servers for the benchmark: started through `workers.web.serve` in a child process with the settings and
the logging of `crm-ingest web` (JSON lines at INFO, redacted, here into the server's log file), watched through /proc
(CPU time, peak RSS of the master and each worker), stopped cleanly."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ProcessMemory:
    role: str  # "master" or "worker"
    pid: int
    peak_rss_kib: int  # VmHWM: the high-water mark of the resident set since the process started
    rss_kib: int


class Server:
    """One gunicorn master and its workers, serving `app_factory` on a loopback port."""

    def __init__(self, name: str, app_factory: str, workers: int, threads: int, workdir: Path,
                 env: dict[str, str] | None = None, cpu_affinity: bool = True, read_timeout: float | None = None):
        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"{name}-server.log"
        data_dir = workdir / f"{name}-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        child_env = {k: v for k, v in os.environ.items()
                     if k not in ("DATABASE_URL", "BROKER_URL", "PROMETHEUS_MULTIPROC_DIR")}
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        child_env.update(env or {})
        # Logging as `crm-ingest web` sets it up: a benchmark without it would leave out every line a request logs.
        command = [sys.executable, "-c", "import sys; from workers.web import serve; "
                   "from ingest.logs import configure_logging; configure_logging(); "
                   "serve('127.0.0.1', int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), "
                   "__import__('pathlib').Path(sys.argv[4]), sys.argv[5], cpu_affinity=sys.argv[6] == 'on', "
                   "**({'read_timeout': float(sys.argv[7])} if len(sys.argv) > 7 else {}))",
                   str(self.port), str(workers), str(threads), str(data_dir), app_factory,
                   "on" if cpu_affinity else "off", *([str(read_timeout)] if read_timeout is not None else [])]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=workdir, env=child_env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self.expected_workers = workers

    def wait_ready(self, probe_path: str) -> None:
        """Until the port answers `probe_path` and every worker has started (or fail with the server's log)."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._answers(probe_path) and len(self.worker_pids()) >= self.expected_workers:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} server did not start within {START_TIMEOUT_SECONDS}s:\n{self.log_tail()}")

    def _answers(self, path: str) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", path)
            return connection.getresponse().status < 500
        except OSError:
            return False
        finally:
            connection.close()

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the master and its current workers."""
        return sum(cpu_seconds_of(pid) for pid in [self.process.pid, *self.worker_pids()])

    def memory(self) -> list[ProcessMemory]:
        roles = [("master", self.process.pid)] + [("worker", pid) for pid in self.worker_pids()]
        return [memory for role, pid in roles if (memory := memory_of(role, pid)) is not None]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def children_of(pid: int) -> list[int]:
    """The process's children, whichever of its threads started them."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(child) for child in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return sorted(set(children))


def cpu_seconds_of(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces; what follows ")" does not
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def memory_of(role: str, pid: int) -> ProcessMemory | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(value.split()[0])
    return ProcessMemory(role, pid, values.get("VmHWM", 0), values.get("VmRSS", 0))
