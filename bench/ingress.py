"""Ingress benchmark: the real `/hooks/<source>` endpoint against a hello-world Flask endpoint.

Both are served by `workers.web.serve` (the gunicorn settings of `crm-ingest web`) on loopback ports, the hooks app on
a private PostgreSQL schema and Redis key prefix, and both are driven by the same closed-loop load. It prints
requests/s, p50 and p99 for each, the ratio hooks/hello, how evenly each round's connections spread over the
workers and what even and one-sided rounds served (bench.spread), the peak RSS of every web process, and checks
that every 200 corresponds to a committed event. A report, not a test: the exit status is 0 on a MISS.

    python -m bench.ingress [--requests N] [--seconds T] [--concurrency C] [--workers W] [--threads T]
                            [--no-cpu-affinity] [--scenario generic|jivo|jivo-known]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):  # `python bench/ingress.py` as well as `python -m bench.ingress`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu import REDIS, CpuMeter  # noqa: E402
from bench.hello_app import HELLO_PATH  # noqa: E402
from bench.load import LoadResult, http_request, run_load  # noqa: E402
from bench.servers import Server, cpu_seconds_of  # noqa: E402
from bench.services import Services, private_services  # noqa: E402
from bench.spread import RoundFigures, busiest_share, spread_lines  # noqa: E402
from workers.cli import DEFAULT_WEB_THREADS  # noqa: E402

TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
TARGET_RSS_MB = 100.0
POSTGRES = "postgres"
SOURCE = "bench"
CONFIG_FILE = "crm-ingest.toml"  # the hooks app's, in the run's folder
TOKEN = "bench-token-" + uuid.uuid4().hex
URL_SECRET = "bench-url-secret-" + uuid.uuid4().hex
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scenario:
    """What both endpoints receive: the same headers and the same bodies, distinct per request number."""
    name: str
    source: dict[str, str]  # the hooks app's source settings
    hooks_path: str
    headers: dict[str, str]
    body: Callable[[int, str], bytes]
    after_warmup: Callable[[Path], None] | None = None  # given the hooks app's config file


def generic_scenario() -> Scenario:
    def body(number: int, run: str) -> bytes:
        return json.dumps({"type": "bench", "id": f"visitor-{number}", "email": f"v{number}@example.com",
                           "run": run, "n": number}).encode()
    return Scenario("generic", {"provider": "generic", "token": TOKEN}, f"/hooks/{SOURCE}",
                    {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}, body)


def jivo_scenario(known_visitors: int | None = None) -> Scenario:
    """Jivo's chat_accepted sample: its reply looks the visitor up in the contact store (a synchronous read).

    Every chat is a new visitor, or with `known_visitors` one of that many, whose warm-up chats are processed before
    the measured rounds so that each reply carries the visitor's card.
    """
    from ingest.providers import UnknownProvider, get_provider

    try:
        get_provider("jivo")
    except UnknownProvider:
        raise SystemExit("the jivo scenario needs the jivo provider (ingest/providers/jivo)") from None
    sample = json.loads((REPO_ROOT / "tests" / "payloads" / "jivo" / "chat_accepted.json").read_bytes())

    def body(number: int, run: str) -> bytes:
        person = number if known_visitors is None else number % known_visitors
        # Each visitor their own Jivo client number too: the sample's one, shared, would make them all one contact.
        visitor = {**sample["visitor"], "email": f"v{person}-{run}@example.com", "phone": f"+1408{person:07d}",
                   "number": str(100_000 + person)}
        return json.dumps({**sample, "chat_id": number, "visitor": visitor}, ensure_ascii=False).encode()
    return Scenario("jivo" if known_visitors is None else "jivo-known", {"provider": "jivo", "url_secret": URL_SECRET},
                    f"/hooks/{SOURCE}/{URL_SECRET}", {"Content-Type": "application/json"}, body,
                    None if known_visitors is None else _process_stored)


def _process_stored(config: Path) -> None:
    """What a worker would make of the events stored so far, done here: their visitors become known contacts."""
    from sqlalchemy import select

    from crm_sync.pipeline import process_events
    from ingest.runtime import Runtime
    from ingest.schema import Event, EventStatus
    from ingest.settings import load_settings

    runtime = Runtime(load_settings(config))
    try:
        with runtime.sessions() as session:
            waiting = list(session.scalars(select(Event.id).where(Event.status == EventStatus.RECEIVED)))
        process_events(runtime.sessions, waiting)
    finally:
        runtime.close()


# jivo-known: 200 visitors over and over, as a site's returning visitors; the warm-up chats make them known.
SCENARIOS = {"generic": generic_scenario, "jivo": jivo_scenario, "jivo-known": lambda: jivo_scenario(200)}


@dataclass
class Endpoint:
    name: str
    server: Server
    path: str
    measured: LoadResult = field(default_factory=LoadResult)
    ok_responses: int = 0  # 200s, warm-up included: each one must be a committed event
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # per part (bench.cpu), summed over the rounds
    # Per measured round: its req/s and where the kernel put its new connections (bench.spread).
    rounds: list[RoundFigures] = field(default_factory=list)
    next_number: int = 0

    def drive(self, scenario: Scenario, run: str, count: int, seconds: float, concurrency: int,
              measure: bool, services: Services) -> None:
        def make(number: int) -> bytes:
            return http_request("POST", "127.0.0.1", self.server.port, self.path, scenario.headers,
                                scenario.body(number, run))

        workers = self.server.worker_pids()
        before = [cpu_seconds_of(pid) for pid in workers]
        with CpuMeter({"server": self.server.cpu_seconds}, {POSTGRES: services.backend_cpu_seconds}) as meter:
            result = run_load("127.0.0.1", self.server.port, make, first=self.next_number, max_requests=count,
                              max_seconds=seconds, concurrency=concurrency)
        per_worker = [cpu_seconds_of(pid) - start for pid, start in zip(workers, before)]
        self.next_number += count
        self.ok_responses += result.statuses.get(200, 0)
        if measure:
            for part, used in meter.seconds.items():
                self.cpu_seconds[part] = self.cpu_seconds.get(part, 0.0) + used
            self.measured.merge(result)
            share = busiest_share(per_worker)
            if share is not None and result.wall_seconds > 0:
                self.rounds.append(RoundFigures(result.completed / result.wall_seconds, share))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    scenario = SCENARIOS[args.scenario]()
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="crm-ingest-bench-") as folder, \
            private_services(args.database_url, args.redis_url) as services:
        workdir = Path(folder)
        endpoints = _start(args, scenario, services, workdir)
        try:
            for endpoint in endpoints:
                endpoint.drive(scenario, run, args.warmup, args.seconds, args.concurrency, False, services)
            if scenario.after_warmup is not None:
                scenario.after_warmup(workdir / CONFIG_FILE)
            for _ in range(args.rounds):  # alternating, so background load on the machine hits both alike
                for endpoint in endpoints:
                    endpoint.drive(scenario, run, max(1, args.requests // args.rounds),
                                   args.seconds / args.rounds, args.concurrency, True, services)
            memory = {endpoint.name: endpoint.server.memory() for endpoint in endpoints}
        finally:
            for endpoint in endpoints:
                endpoint.server.stop()
        stored, unpublished = services.stored_events(SOURCE)
        queued = services.queued_events(expected=stored)
        report = _report(args, endpoints, memory, stored, unpublished, queued)
    print(report["text"])
    if args.json:
        Path(args.json).write_text(json.dumps(report["data"], indent=2))
    return 0


def _start(args, scenario: Scenario, services: Services, workdir: Path) -> list[Endpoint]:
    config = services.write_config(workdir / CONFIG_FILE, workdir / "hooks-data", {SOURCE: scenario.source})
    hello = Server("hello", "bench.hello_app:create_hello_app", args.workers, args.threads, workdir,
                   cpu_affinity=args.cpu_affinity)
    hooks = Server("hooks", "ingest.app:create_app", args.workers, args.threads, workdir,
                   env={"CRM_INGEST_CONFIG": str(config)}, cpu_affinity=args.cpu_affinity)
    try:
        hello.wait_ready(HELLO_PATH)
        hooks.wait_ready("/healthz")
    except Exception:
        hello.stop()
        hooks.stop()
        raise
    return [Endpoint("hello", hello, HELLO_PATH), Endpoint("hooks", hooks, scenario.hooks_path)]


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.ingress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=12000, help="measured requests per endpoint (upper bound)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per endpoint (upper bound)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections, each one request at a time")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (as `crm-ingest web`)")
    parser.add_argument("--threads", type=int, default=DEFAULT_WEB_THREADS,
                        help="threads per worker (as `crm-ingest web`)")
    parser.add_argument("--no-cpu-affinity", dest="cpu_affinity", action="store_false",
                        help="as `crm-ingest web --no-cpu-affinity`: workers not pinned to CPUs")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests per endpoint first")
    # Many short rounds: each round's connections land on the workers as the kernel's accept race decides, and a
    # round whose eight all land on one worker measures half the throughput; over many rounds that averages out.
    parser.add_argument("--rounds", type=int, default=12, help="alternating measurement rounds per endpoint")
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://127.0.0.1:5432/test"),
        help="PostgreSQL database in which a private schema is created and dropped")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="generic",
                        help="generic: a JSON body with a bearer token; jivo: Jivo's chat_accepted sample, every "
                             "visitor new; jivo-known: the same from 200 returning visitors, so every reply has a card")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if min(args.requests, args.concurrency, args.workers, args.threads, args.rounds) < 1 or args.seconds <= 0:
        parser.error("--requests, --seconds, --concurrency, --workers, --threads and --rounds must be positive")
    return args


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _figures(endpoint: Endpoint) -> dict:
    result = endpoint.measured
    latencies = sorted(result.latencies)
    return {
        "requests": result.completed,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "errors": result.errors,
        "requests_per_second": result.completed / result.wall_seconds if result.wall_seconds else 0.0,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "server_cpu_us_per_request": _per_request(endpoint, "server"),
        "client_cpu_percent": 100 * result.client_cpu_seconds / result.wall_seconds if result.wall_seconds else 0,
        "cpu_us_per_request": {part: _per_request(endpoint, part) for part in endpoint.cpu_seconds},
    }


def _per_request(endpoint: Endpoint, part: str) -> float:
    completed = endpoint.measured.completed
    return endpoint.cpu_seconds.get(part, 0.0) / completed * 1e6 if completed else 0.0


# part in bench.cpu -> column heading
CPU_PARTS = {"server": "server", POSTGRES: "postgres", REDIS: "redis", "benchmark (load, fake CRM)": "load",
             "machine": "machine"}


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS  <<<<<<<<"


def _report(args, endpoints: list[Endpoint], memory, stored: int, unpublished: int, queued: int) -> dict:
    hello, hooks = (_figures(endpoint) for endpoint in endpoints)
    ratio = hooks["requests_per_second"] / hello["requests_per_second"] if hello["requests_per_second"] else 0.0
    ok_200 = endpoints[1].ok_responses
    peak_mb = {name: [(m.role, m.pid, m.peak_rss_kib / 1024) for m in processes] for name, processes in memory.items()}
    rss_ok = all(mb <= TARGET_RSS_MB for processes in peak_mb.values() for _, _, mb in processes)
    worker_class = "gthread" if args.threads > 1 else "sync"
    pinned = "a CPU per worker" if args.cpu_affinity else "workers not pinned"
    lines = [
        f"crm-ingest ingress benchmark, {args.scenario} scenario: gunicorn {args.workers} worker(s) x {args.threads}"
        f" thread(s) ({worker_class}, {pinned}) for both apps, {args.concurrency} keep-alive connections, loopback",
        f"machine: {os.cpu_count()} CPU(s) {_cpu_model()}, load average at the end {_load_average()},"
        f" Python {platform.python_version()}",
        f"measured: up to {args.requests} requests or {args.seconds:g} s per endpoint in {args.rounds} alternating"
        f" round(s), after {args.warmup} warm-up requests each",
        "",
        f"{'endpoint':<8} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'server CPU/req':>15}"
        f" {'client CPU':>11}  statuses",
    ]
    for name, figures in (("hello", hello), ("hooks", hooks)):
        statuses = ", ".join(f"{k}: {v}" for k, v in figures["statuses"].items())
        errors = f"; errors {figures['errors']}" if figures["errors"] else ""
        lines.append(f"{name:<8} {figures['requests']:>9} {figures['requests_per_second']:>9.1f}"
                     f" {figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f}"
                     f" {figures['server_cpu_us_per_request']:>12.0f} us {figures['client_cpu_percent']:>10.0f}%"
                     f"  {statuses}{errors}")
    lines += ["", "CPU per request (us)      " + "  ".join(f"{head:>10}" for head in CPU_PARTS.values())]
    for name, figures in (("hello", hello), ("hooks", hooks)):
        used = figures["cpu_us_per_request"]
        lines.append(f"  {name:<23} " + "  ".join(f"{used.get(part, 0.0):>10.0f}" for part in CPU_PARTS))
    lines.append("  (machine: every core's busy time, whoever used it; load: the benchmark's own client)")
    spread_text, spread = spread_lines({endpoint.name: endpoint.rounds for endpoint in endpoints})
    lines += spread_text
    durable = stored == ok_200 and ok_200 > 0
    lines += [
        "",
        f"ratio hooks/hello req/s   {ratio:6.3f}     target >= {TARGET_RATIO}    {_verdict(ratio >= TARGET_RATIO)}",
        f"hooks p99                 {hooks['p99_ms']:6.2f} ms  target <= {TARGET_P99_MS:g} ms  "
        f"{_verdict(hooks['p99_ms'] <= TARGET_P99_MS)}",
        f"acks after commit         {ok_200} responses 200 (warm-up included), {stored} events stored  "
        f"{_verdict(durable)}",
        f"published after response  {queued} event(s) in task messages in the broker, {unpublished} left for the relay",
        "",
        f"peak RSS (VmHWM)          target <= {TARGET_RSS_MB:g} MB each  {_verdict(rss_ok)}",
    ]
    for name, processes in peak_mb.items():
        lines.append(f"  {name:<6} " + ", ".join(f"{role} {pid}: {mb:.1f} MB" for role, pid, mb in processes))
    data = {"hello": hello, "hooks": hooks, "ratio": ratio, "ok_200": ok_200, "stored_events": stored,
            "unpublished_events": unpublished, "queued_events": queued, "peak_rss_mb": peak_mb, "spread": spread,
            "settings": {k: v for k, v in vars(args).items() if k not in ("database_url", "redis_url", "json")}}
    return {"text": "\n".join(lines), "data": data}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"({line.split(':', 1)[1].strip()})"
    except OSError:
        pass
    return ""


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
