"""`crm-ingest web` keeps each gunicorn worker on a CPU of its own (workers.cpu_affinity)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

import workers.cpu_affinity as cpu_affinity
from bench.hello_app import HELLO_PATH
from bench.servers import Server
from tests.support.waiting import wait_until
from workers.cpu_affinity import CPU_ATTRIBUTE, assign_cpu, pin_to_assigned_cpu

CPUS = sorted(os.sched_getaffinity(0))


def worker_on(cpu: int | None) -> SimpleNamespace:
    worker = SimpleNamespace(pid=0)
    if cpu is not None:
        setattr(worker, CPU_ATTRIBUTE, cpu)
    return worker


def assigned(live_workers_cpus: list[int], cpus: list[int], monkeypatch) -> int | None:
    monkeypatch.setattr(cpu_affinity, "available_cpus", lambda: cpus)
    server = SimpleNamespace(WORKERS={pid: worker_on(cpu) for pid, cpu in enumerate(live_workers_cpus)})
    worker = worker_on(None)
    assign_cpu(server, worker)
    return getattr(worker, CPU_ATTRIBUTE, None)


def test_a_new_worker_takes_the_cpu_fewest_live_workers_are_on(monkeypatch):
    assert assigned([], [0, 1, 2], monkeypatch) == 0
    assert assigned([0], [0, 1, 2], monkeypatch) == 1
    assert assigned([0, 1, 2, 0], [0, 1, 2], monkeypatch) == 1


def test_a_replacement_worker_takes_the_cpu_its_predecessor_left(monkeypatch):
    assert assigned([0, 2], [0, 1, 2], monkeypatch) == 1


def test_with_one_cpu_nothing_is_pinned(monkeypatch):
    assert assigned([], [0], monkeypatch) is None


def test_a_worker_without_an_assigned_cpu_is_left_as_it_is():
    before = os.sched_getaffinity(0)
    pin_to_assigned_cpu(SimpleNamespace(), worker_on(None))
    assert os.sched_getaffinity(0) == before


def serve_and_read_affinities(tmp_path, cpu_affinity: bool, settled=lambda affinities: True) -> list[set[int]]:
    """The CPUs each of the two workers may run on, once both run and `settled` holds (a worker answering requests
    does not mean that the other one has got past its post_fork yet)."""
    server = Server("hello", "bench.hello_app:create_hello_app", 2, 2, tmp_path, cpu_affinity=cpu_affinity)
    try:
        server.wait_ready(HELLO_PATH)

        def both_workers() -> list[set[int]] | None:
            affinities = [os.sched_getaffinity(pid) for pid in server.worker_pids()]
            return affinities if len(affinities) == 2 and settled(affinities) else None
        return wait_until(both_workers, timeout=30, what="two settled workers")
    finally:
        server.stop()


@pytest.mark.skipif(len(CPUS) < 2, reason="pinning needs two CPUs to choose from")
def test_each_served_worker_runs_on_a_cpu_of_its_own(tmp_path):
    affinities = serve_and_read_affinities(tmp_path, cpu_affinity=True,
                                           settled=lambda found: all(len(cpus) == 1 for cpus in found))
    assert affinities[0] != affinities[1]


def test_without_cpu_affinity_the_workers_may_run_anywhere(tmp_path):
    assert serve_and_read_affinities(tmp_path, cpu_affinity=False) == [set(CPUS), set(CPUS)]
