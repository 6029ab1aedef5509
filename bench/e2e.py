"""End-to-end benchmark: provider webhooks in through `crm-ingest web`, processed by `crm-ingest worker` processes,
delivered to a fake HubSpot on loopback, on PostgreSQL and Redis, against a no-op Celery pipeline in the same run.

It prints, with the targets of issue 6:
1. sustained events/s from the first byte sent to the last CRM write, for a burst of new people;
2. the same workers running a task that does nothing, on the same broker: the ratio of the two;
3. ack→CRM latency p50/p99 at a fixed offered rate (the fake stamps each note's arrival; the generator each ack);
4. CRM API calls per event for the burst of new people;
5. peak RSS of the web and worker processes, and where each phase's CPU time went.
A report, not a test: the exit status is 0 on a MISS.

    python -m bench.e2e [--events N] [--rate R] [--seconds T] [--workers W] [--concurrency C] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # `python bench/e2e.py` as well as `python -m bench.e2e`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu import CpuMeter  # noqa: E402
from bench.crm import TOKEN, IndexedHubSpot  # noqa: E402
from bench.e2e_report import report  # noqa: E402
from workers.cli import DEFAULT_CONCURRENCY, DEFAULT_WEB_THREADS  # noqa: E402
from bench.load import run_load  # noqa: E402
from bench.noop import publish_noops, wait_until_consumed  # noqa: E402
from bench.services import Services, private_services  # noqa: E402
from bench.traffic import SOURCES, NewPerson, new_person_request, wire_bytes  # noqa: E402
from bench.workers import Deployment, WorkerProcess  # noqa: E402
from ingest.runtime import Runtime  # noqa: E402
from ingest.settings import load_settings  # noqa: E402

DESTINATION = "hubspot-main"
POSTGRES = "postgres (our backends)"
POLL_SECONDS = 0.05


@dataclass
class Phase:
    """One measured phase: what was sent, when it was acknowledged, when each person's note reached the CRM."""

    name: str
    events: int
    statuses: dict[int, int]
    errors: dict[str, int]
    first_byte: float                  # time.perf_counter() (= time.monotonic() on Linux)
    last_ack: float
    acks: dict[str, float]             # email -> when its request was acknowledged
    arrivals: dict[str, float]         # email -> when its first note arrived in the CRM
    calls: int                         # CRM API calls made during the phase
    cpu: CpuMeter
    offered_rate: float | None = None


@dataclass
class Baseline:
    tasks: int
    seconds: float
    cpu: CpuMeter


class Pipeline:
    """The deployment of one run (web and workers) and the fake CRM it delivers to, driven phase by phase."""

    def __init__(self, args: argparse.Namespace, services: Services, config: Path, workdir: Path,
                 crm: IndexedHubSpot, run: str):
        self.args, self.services, self.crm, self.run = args, services, crm, run
        self.deployment = Deployment(config, workdir, web_workers=args.web_workers, web_threads=args.web_threads,
                                     workers=args.workers, concurrency=args.concurrency)
        self.web = self.deployment.web
        self.next_number = 0

    def meter(self) -> CpuMeter:
        return CpuMeter({"web": self.web.cpu_seconds, "workers": self.deployment.worker_cpu_seconds},
                        {POSTGRES: self.services.backend_cpu_seconds})

    def phase(self, name: str, count: int, connections: int, rate: float | None = None) -> Phase:
        """Send `count` new people's requests (as fast as acknowledged, or at `rate`), wait until all are in the CRM."""
        first, self.next_number = self.next_number, self.next_number + count
        people = {number: NewPerson(number, self.run) for number in range(first, first + count)}
        wire = {number: wire_bytes(new_person_request(person), self.web.port) for number, person in people.items()}
        acks: dict[str, float] = {}
        sent: list[float] = []

        def heard(number: int, status: int, sent_at: float, acked_at: float) -> None:
            sent.append(sent_at)
            if status == 200:
                acks[people[number].email] = acked_at

        calls_before = self.crm.calls_made()
        with self.meter() as cpu:
            result = run_load("127.0.0.1", self.web.port, wire.__getitem__, first=first, max_requests=count,
                              max_seconds=self.args.timeout, concurrency=connections, rate=rate, on_response=heard)
            arrivals = self._wait_in_crm(set(acks))
        return Phase(name, count, dict(result.statuses), dict(result.errors), min(sent, default=0.0),
                     max(acks.values(), default=0.0), acks, arrivals, self.crm.calls_made() - calls_before, cpu,
                     rate)

    def _wait_in_crm(self, emails: set[str]) -> dict[str, float]:
        deadline = time.monotonic() + self.args.timeout
        while True:
            arrivals = self.crm.first_note_by_email()
            found = {email: arrivals[email] for email in emails if email in arrivals}
            if len(found) == len(emails) or time.monotonic() > deadline:
                return found
            time.sleep(POLL_SECONDS)

    def memory(self) -> dict[str, list]:
        return {"web": self.web.memory(),
                "workers": [m for worker in self.deployment.workers for m in worker.memory()]}


def measure_baseline(args: argparse.Namespace, services: Services, config: Path, workdir: Path
                     ) -> tuple[Baseline, list]:
    """The no-op pipeline: the same worker command, count and concurrency, a task that does nothing, one message
    per task (crm-ingest's web puts up to 20 event ids in one message; the floor here is Celery's per message)."""
    workers = [WorkerProcess(f"noop-worker{i}", config, workdir, args.concurrency, ("--include", "bench.noop"))
               for i in range(args.workers)]
    runtime = Runtime(load_settings(config))
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        publish_noops(runtime, 0, args.warmup)
        wait_until_consumed(services.redis_url, services.key_prefix, args.timeout)
        with CpuMeter({"workers": lambda: sum(worker.cpu_seconds() for worker in workers)},
                      {POSTGRES: services.backend_cpu_seconds}) as cpu:
            started = time.perf_counter()
            publish_noops(runtime, args.warmup, args.noop_tasks)
            ended = wait_until_consumed(services.redis_url, services.key_prefix, args.timeout)
        memory = [m for worker in workers for m in worker.memory()]
        return Baseline(args.noop_tasks, ended - started, cpu), memory
    finally:
        for worker in workers:
            worker.stop()
        runtime.close()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="crm-ingest-e2e-") as folder, \
            private_services(args.database_url, args.redis_url) as services, IndexedHubSpot().running() as crm:
        workdir = Path(folder)
        config = services.write_config(workdir / "crm-ingest.toml", workdir / "data", SOURCES,
                                       {DESTINATION: _destination(args, crm)})
        baseline, baseline_memory = measure_baseline(args, services, config, workdir)
        pipeline = Pipeline(args, services, config, workdir, crm, run)
        try:
            pipeline.deployment.start()
            pipeline.phase("warm-up", args.warmup, args.connections)
            burst = pipeline.phase("burst", args.events, args.connections)
            paced = pipeline.phase("paced", max(1, round(args.rate * args.seconds)), args.paced_connections,
                                   rate=args.rate)
            memory = {**pipeline.memory(), "no-op workers": baseline_memory}
        except Exception:
            print(pipeline.deployment.log_tails(), file=sys.stderr)
            raise
        finally:
            pipeline.deployment.stop()
    text, data = report(args, baseline, burst, paced, memory)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2))
    return 0


def _destination(args: argparse.Namespace, crm: IndexedHubSpot) -> dict:
    destination = {"kind": "hubspot", "base_url": crm.url, "token": TOKEN, "portal_id": 4242}
    if args.crm_rate:
        destination["rate"] = args.crm_rate
    return destination


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="new people in the burst (throughput, CRM calls)")
    parser.add_argument("--noop-tasks", type=int, default=None, help="no-op tasks for the baseline (default: --events)")
    parser.add_argument("--rate", type=float, default=50.0, help="offered events/s of the latency phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency phase")
    parser.add_argument("--warmup", type=int, default=40, help="unmeasured events (and no-op tasks) first")
    parser.add_argument("--workers", type=int, default=1, help="`crm-ingest worker` processes (both pipelines)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help="pool processes per worker, both pipelines (default: as `crm-ingest worker`, cores + 1)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (as `crm-ingest web`)")
    parser.add_argument("--web-threads", type=int, default=DEFAULT_WEB_THREADS,
                        help="threads per gunicorn worker (as `crm-ingest web`)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections sending the burst")
    parser.add_argument("--paced-connections", type=int, default=16, help="connections of the paced phase")
    parser.add_argument("--crm-rate", default=None, help='the destination\'s shared rate limit, e.g. "100/10s"')
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on each phase, seconds")
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://127.0.0.1:5432/test"),
        help="PostgreSQL database in which a private schema is created and dropped")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    args.noop_tasks = args.noop_tasks or args.events
    if min(args.events, args.workers, args.concurrency, args.web_workers, args.web_threads, args.connections,
           args.paced_connections, args.noop_tasks) < 1 or args.rate <= 0 or args.seconds <= 0 or args.warmup < 0:
        parser.error("counts, --rate and --seconds must be positive")
    return args


if __name__ == "__main__":
    sys.exit(main())
