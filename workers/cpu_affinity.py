"""One CPU per gunicorn worker (Linux): each web worker process, and every thread it starts, stays on the CPU the
master picked for it when it forked it, the one fewest live workers are on.

Why: a gthread worker's request threads and its accept loop hand the GIL to one another several times per request.
Spread by the scheduler over several cores, each hand-over is a wake-up across CPUs, which on a virtual machine costs
far more than the hand-over itself. Pinned, on 2 vCPUs with PostgreSQL and the load on the same cores, the ingress
benchmark's webhook served 25-35 % more requests per second at about 25 % lower p99, and the end-to-end benchmark
2-9 % more events per second. `crm-ingest web --no-cpu-affinity` leaves the placement to the scheduler, for a
host whose cores other work keeps busy.
"""
from __future__ import annotations

import os
from collections import Counter

CPU_ATTRIBUTE = "crm_ingest_cpu"  # set on gunicorn's worker object in the master, read in the forked worker


def available_cpus() -> list[int]:
    """The CPUs this process may run on; none where the platform cannot pin (not Linux)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def assign_cpu(server, worker) -> None:
    """gunicorn's pre_fork, in the master: the CPU with the fewest live workers, so a replacement worker takes the
    CPU its predecessor left. With a single CPU there is nothing to choose."""
    cpus = available_cpus()
    if len(cpus) < 2:
        return
    taken = Counter(getattr(live, CPU_ATTRIBUTE, None) for live in server.WORKERS.values())
    setattr(worker, CPU_ATTRIBUTE, min(cpus, key=lambda cpu: (taken[cpu], cpu)))


def pin_to_assigned_cpu(server, worker) -> None:
    """gunicorn's post_fork, in the new worker before it starts any thread (threads inherit the affinity)."""
    cpu = getattr(worker, CPU_ATTRIBUTE, None)
    if cpu is None:
        return
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:  # the CPU left this process's allowed set meanwhile: run unpinned rather than not at all
        server.log.warning("worker %s: could not pin to CPU %s, running unpinned: %s", worker.pid, cpu, exc)
