"""Chaos run: thousands of provider payloads through real processes while workers are SIGKILLed, the broker restarts
and the CRMs fail a fifth of their calls; afterwards the guarantees of DESIGN.md are checked.

Real `crm-ingest web` (gunicorn), `crm-ingest worker` processes and `crm-ingest beat`, on a private PostgreSQL schema,
a `redis-server` of its own (the machine's is never touched) and two fake CRMs on loopback: HubSpot (batch upsert)
and Pipedrive (search, then create). The stream mixes all four providers, redelivers 30% of the payloads (half of
them racing the first delivery). Once it is sent the faults stop; the run waits until nothing moves, replays the dead
events and retries the dead deliveries with the CLI, as an operator would, and checks:

1. every acknowledged request is stored;  2. every event is processed or dead with a reason;
3. no person has two contacts;  4. no CRM has two records for a person (nor an interaction written twice);
5. replaying the dead ones after the faults stop finishes them.

    python -m bench.chaos [--payloads 3000] [--people 400] [--rate 30] [--kills 6] [--seed N] [--json PATH]

`tests/chaos/test_chaos.py` runs the same scenario on a few hundred payloads. Exit status 1 if an invariant fails.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

if __package__ in (None, ""):  # `python bench/chaos.py` as well as `python -m bench.chaos`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chaos_report import ChaosReport  # noqa: E402
from bench.chaos_run import run_chaos  # noqa: E402


@dataclass(frozen=True)
class ChaosSettings:
    payloads: int = 3000            # distinct provider requests (redeliveries come on top)
    people: int = 400
    rate: float = 30.0              # first deliveries per second
    redelivered: float = 0.3        # share of payloads delivered more than once
    failure_rate: float = 0.2       # share of CRM calls that fail while the faults are on
    kills: int = 6                  # workers SIGKILLed during the stream (the broker restarts once besides)
    workers: int = 2                # `crm-ingest worker` processes
    concurrency: int = 2            # pool processes each
    connections: int = 8            # connections sending the stream
    seed: int = 20261121
    settle_seconds: float = 600.0   # bound on each wait for the pipeline to go quiet
    database_url: str = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://127.0.0.1:5432/test")


def main(argv: list[str] | None = None) -> int:
    settings, json_path = _arguments(argv)
    report = run_chaos(settings, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(report.text())
    if json_path:
        Path(json_path).write_text(json.dumps(report.data(), indent=2, default=str))
    return 0 if report.passed else 1


def _arguments(argv) -> tuple[ChaosSettings, str | None]:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    defaults = ChaosSettings()
    for item in fields(ChaosSettings):
        flag = "--" + item.name.replace("_", "-")
        parser.add_argument(flag, type=type(getattr(defaults, item.name)), default=getattr(defaults, item.name))
    parser.add_argument("--json", metavar="PATH", help="also write the summary as JSON")
    args = vars(parser.parse_args(argv))
    path = args.pop("json")
    settings = ChaosSettings(**args)
    if min(settings.payloads, settings.people, settings.workers, settings.concurrency, settings.connections) < 1 \
            or settings.rate <= 0 or not 0 <= settings.failure_rate < 1 or not 0 <= settings.redelivered <= 1:
        parser.error("counts and --rate must be positive, --failure-rate and --redelivered fractions")
    return settings, path


__all__ = ["ChaosReport", "ChaosSettings", "run_chaos"]

if __name__ == "__main__":
    sys.exit(main())
