"""Where a benchmark phase's CPU time went: our processes, PostgreSQL and Redis, the benchmark itself, the machine.

Read from /proc before and after a phase. PostgreSQL is counted over the backends of the run's own connections (by
their application_name); Redis by process name, so other work on the machine that uses the same server is included;
`machine` shows how busy the cores were altogether, whoever kept them busy.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.servers import CLOCK_TICKS, cpu_seconds_of

REDIS = "redis-server"


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def service_processes(name: str) -> dict[int, float]:
    """{pid: CPU seconds used so far} of the live processes with this command name."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == name:
                found[int(entry.name)] = cpu_seconds_of(int(entry.name))
        except OSError:
            continue
    return found


def _grown(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes used in between (one that started meanwhile counts whole; one that ended, not)."""
    return sum(max(0.0, seconds - before.get(pid, 0.0)) for pid, seconds in after.items())


@dataclass
class CpuMeter:
    """CPU seconds per part over one phase.

    `ours` maps a part to a reader of its CPU seconds so far; `groups` maps a part to a reader of {pid: CPU seconds}
    of its processes now, for parts whose processes come and go (database backends).
    """

    ours: dict[str, Callable[[], float]]
    groups: dict[str, Callable[[], dict[int, float]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)   # after the phase: CPU seconds per part
    wall: float = 0.0

    def _read(self) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
        values = {name: read() for name, read in self.ours.items()}
        values["benchmark (load, fake CRM)"] = time.process_time()
        groups = {name: read() for name, read in self.groups.items()}
        groups[REDIS] = service_processes(REDIS)
        values["machine"] = machine_busy_seconds()
        return values, groups

    def __enter__(self) -> "CpuMeter":
        (self._started, self._started_groups), self._wall_started = self._read(), time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        (ended, groups), self.wall = self._read(), time.perf_counter() - self._wall_started
        self.seconds = {name: max(0.0, ended[name] - self._started[name]) for name in ended if name != "machine"}
        self.seconds.update({name: _grown(self._started_groups[name], after) for name, after in groups.items()})
        self.seconds["machine"] = ended["machine"] - self._started["machine"]

    def utilisation(self) -> dict[str, float]:
        """Each part's share of one core over the phase (machine: of all cores)."""
        shares = {name: value / self.wall for name, value in self.seconds.items()} if self.wall else {}
        if "machine" in shares:
            shares["machine"] /= os.cpu_count() or 1
        return shares
