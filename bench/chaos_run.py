"""The chaos scenario itself, shared by `python -m bench.chaos` (thousands of payloads) and `tests/chaos` (hundreds).

It returns a `ChaosReport`; it does not judge beyond the invariants' own checks, so the caller decides what to print
or assert.
"""
from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sqlalchemy import func, select

from bench import chaos_checks as checks
from bench.chaos_faults import (CLIENT_TIMEOUT_SECONDS, ChaosMonkey, Incident, injected, switch_crm_faults_off,
                                switch_crm_faults_on)
from bench.chaos_stream import Stream, build_stream
from bench.crm import IndexedHubSpot
from bench.load import run_load
from bench.redis_server import RedisServer
from bench.servers import REPO_ROOT, Server
from bench.services import private_services
from bench.traffic import SOURCES, wire_bytes
from bench.workers import BeatProcess, WorkerProcess
from crm_sync.schema import Delivery, DeliveryStatus
from ingest.runtime import Runtime
from ingest.schema import Event, EventStatus
from ingest.settings import load_settings
from tests.fakes import hubspot as fake_hubspot
from tests.fakes import pipedrive as fake_pipedrive

if TYPE_CHECKING:
    from bench.chaos import ChaosSettings

# Short enough for a bounded run, as an operator would tune a small deployment; everything else is the default.
PIPELINE_SETTINGS = {"requeue_after_seconds": 10, "relay_interval_seconds": 1, "delivery_sweep_interval_seconds": 1}
RETRIES = {"timeout_seconds": CLIENT_TIMEOUT_SECONDS, "max_attempts": 4, "retry_initial_seconds": 0.2,
           "retry_max_seconds": 2, "circuit_cooldown_seconds": 1, "circuit_max_cooldown_seconds": 4}
UNFINISHED_EVENTS = (EventStatus.RECEIVED, EventStatus.PROCESSING)
UNFINISHED_DELIVERIES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.IN_FLIGHT)


@dataclass
class ChaosReport:
    settings: "ChaosSettings"
    stream: dict = field(default_factory=dict)
    responses: dict = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    crm_faults: dict[str, dict[str, int]] = field(default_factory=dict)
    first_round: dict = field(default_factory=dict)
    operator: list[str] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    checks: list[checks.Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def check(self, name: str) -> checks.Check:
        return next(check for check in self.checks if check.name == name)

    def text(self) -> str:
        from bench.chaos_summary import summary

        return summary(self)

    def data(self) -> dict:
        return {"settings": vars(self.settings), "stream": self.stream, "responses": self.responses,
                "incidents": [vars(incident) for incident in self.incidents], "crm_faults": self.crm_faults,
                "first_round": self.first_round, "operator": self.operator, "final": self.final,
                "checks": [vars(check) for check in self.checks], "seconds": self.seconds, "passed": self.passed}


class Pipeline:
    """The processes of the run: web, workers, beat, the broker and the fake CRMs."""

    def __init__(self, settings: "ChaosSettings", config: Path, workdir: Path, redis: RedisServer):
        self.config, self.redis = config, redis
        self.web = Server("web", "ingest.app:create_app", 2, 4, workdir, env={"CRM_INGEST_CONFIG": str(config)})
        self.workers = [WorkerProcess(f"worker{i}", config, workdir, settings.concurrency)
                        for i in range(settings.workers)]
        self.beat = BeatProcess("beat", config, workdir)

    def start(self) -> None:
        for process in (*self.workers, self.beat):
            process.start()
        self.web.wait_ready("/healthz")
        for process in (*self.workers, self.beat):
            process.wait_ready()

    def stop(self) -> None:
        self.web.stop()
        for process in (self.beat, *self.workers):
            process.stop()

    def cli(self, *arguments: str) -> str:
        """`crm-ingest <arguments>` as an operator runs it; its output."""
        import os

        env = {**os.environ, "CRM_INGEST_CONFIG": str(self.config)}
        done = subprocess.run([sys.executable, "-m", "workers.cli", *arguments], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"crm-ingest {' '.join(arguments)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout.strip()


def run_chaos(settings: "ChaosSettings", progress: Callable[[str], None] = lambda line: None) -> ChaosReport:
    report = ChaosReport(settings)
    started = time.monotonic()
    rng = random.Random(settings.seed)
    stream = build_stream(rng, settings.payloads, settings.people, settings.rate, settings.redelivered)
    report.stream = {"payloads": stream.payloads, "sends": len(stream.sends), "redelivered": stream.redelivered,
                     "seconds": round(stream.seconds, 1), "people": len(stream.everyone)}
    with tempfile.TemporaryDirectory(prefix="crm-ingest-chaos-") as folder, RedisServer(Path(folder)) as redis, \
            private_services(settings.database_url, redis.url) as services, \
            IndexedHubSpot().running() as hubspot, fake_pipedrive.PipedriveFake().running() as pipedrive:
        workdir = Path(folder)
        crms = {"hubspot": hubspot, "pipedrive": pipedrive}
        config = services.write_config(workdir / "crm-ingest.toml", workdir / "data", SOURCES, {
            "hubspot-main": {"kind": "hubspot", "base_url": hubspot.url, "token": fake_hubspot.TOKEN, **RETRIES},
            "pipedrive": {"kind": "pipedrive", "base_url": pipedrive.url, "api_token": fake_pipedrive.TOKEN,
                          **RETRIES}}, **PIPELINE_SETTINGS)
        runtime = Runtime(load_settings(config))
        pipeline = Pipeline(settings, config, workdir, redis)
        try:
            progress(f"chaos: starting web, {settings.workers} workers and beat")
            pipeline.start()
            for offset, fake in enumerate(crms.values()):
                switch_crm_faults_on(fake, settings.failure_rate, settings.seed + offset)
            progress(f"chaos: sending {len(stream.sends)} requests over {stream.seconds:.0f}s with faults on")
            monkey = ChaosMonkey(rng, pipeline.workers, redis, settings.kills, stream.seconds)
            _send_under_chaos(stream, pipeline.web.port, settings.connections, monkey, report)
            for fake in crms.values():
                switch_crm_faults_off(fake)
            report.crm_faults = {name: injected(fake) for name, fake in crms.items()}
            progress("chaos: faults off; waiting until nothing moves")
            _wait_quiet(runtime, settings.settle_seconds)
            report.first_round = _snapshot(runtime)
            report.checks += _invariants(runtime, stream, report.responses.pop("by_number"), crms)
            progress("chaos: replaying dead events and retrying dead deliveries")
            report.operator.append("crm-ingest replay --status dead: " + pipeline.cli("replay", "--status", "dead"))
            report.operator.append("crm-ingest deliveries retry --status dead: "
                                   + pipeline.cli("deliveries", "retry", "--status", "dead"))
            _wait_quiet(runtime, settings.settle_seconds)
            report.final = _snapshot(runtime)
            report.checks += _after_replay(runtime, stream, crms)
        except Exception:
            for process in (*pipeline.workers, pipeline.beat):
                progress(f"--- {process.name} log tail ---\n{process.log_tail()}")
            raise
        finally:
            pipeline.stop()
            runtime.close()
    report.seconds = time.monotonic() - started
    return report


def _send_under_chaos(stream: Stream, port: int, connections: int, monkey: ChaosMonkey, report: ChaosReport) -> None:
    statuses: dict[int, int] = {}
    outcome: dict = {}

    def heard(number: int, status: int, _sent: float, _acked: float) -> None:
        statuses[number] = status

    def send() -> None:
        wire = [wire_bytes(item.request, port) for item in stream.sends]
        outcome["load"] = run_load("127.0.0.1", port, wire.__getitem__, first=0, max_requests=len(wire),
                                   max_seconds=stream.seconds + 600, concurrency=connections,
                                   schedule=lambda number: stream.sends[number].at, on_response=heard)

    sender = threading.Thread(target=send, name="chaos-sender")
    sender.start()
    monkey.run(time.monotonic(), sender.is_alive)
    sender.join()
    load = outcome["load"]
    report.incidents = monkey.incidents
    report.responses = {"statuses": dict(Counter(statuses.values())), "connection_errors": load.errors,
                        "by_number": statuses}


def _wait_quiet(runtime: Runtime, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with runtime.sessions() as session:
            events = session.scalar(select(func.count()).select_from(Event).where(Event.status.in_(UNFINISHED_EVENTS)))
            deliveries = session.scalar(select(func.count()).select_from(Delivery)
                                        .where(Delivery.status.in_(UNFINISHED_DELIVERIES)))
        if not events and not deliveries:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still moving after {timeout:g}s: {events} event(s), {deliveries} delivery(ies)")
        time.sleep(0.5)


def _snapshot(runtime: Runtime) -> dict:
    with runtime.sessions() as session:
        events = dict(session.execute(select(Event.status, func.count()).group_by(Event.status)).all())
        dead_events = dict(session.execute(select(Event.error_class, func.count())
                                           .where(Event.status == EventStatus.DEAD).group_by(Event.error_class)).all())
        deliveries = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        dead = dict(session.execute(select(Delivery.last_error_class, func.count())
                                    .where(Delivery.status == DeliveryStatus.DEAD)
                                    .group_by(Delivery.last_error_class)).all())
        reprocessed = session.scalar(select(func.count()).select_from(Event).where(Event.attempts > 1))
        retried = session.scalar(select(func.coalesce(func.sum(Delivery.attempts - 1), 0))
                                 .where(Delivery.attempts > 1))
        duplicates = session.scalar(select(func.coalesce(func.sum(Event.duplicate_count), 0)))
    return {"events": events, "dead_events_by_reason": dead_events, "deliveries": deliveries,
            "dead_deliveries_by_reason": dead, "events_processed_more_than_once": reprocessed,
            "delivery_retries": retried, "redeliveries_counted": duplicates}


def _crm_records(crms: dict) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    hubspot, pipedrive = crms["hubspot"], crms["pipedrive"]
    with hubspot.lock, pipedrive.lock:
        phones = {"hubspot": [c["properties"].get("phone") or "" for c in hubspot.contacts.values()],
                  "pipedrive": [(p["phones"] or [{"value": ""}])[0]["value"] for p in pipedrive.persons.values()]}
        notes = {"hubspot": [n["properties"].get("hs_note_body") or "" for n in hubspot.notes.values()],
                 "pipedrive": [n.get("content") or "" for n in pipedrive.notes.values()]}
    return phones, notes


def _invariants(runtime: Runtime, stream: Stream, statuses: dict[int, int], crms: dict) -> list[checks.Check]:
    phones, notes = _crm_records(crms)
    return [checks.acknowledged_requests_are_stored(runtime.sessions, stream.sends, statuses),
            checks.events_are_finished(runtime.sessions),
            checks.one_contact_per_person(runtime.sessions, stream.everyone),
            checks.one_record_per_person(phones, notes, stream.everyone)]


def _after_replay(runtime: Runtime, stream: Stream, crms: dict) -> list[checks.Check]:
    from crm_sync.schema import ContactIdentity

    with runtime.sessions() as session:
        seen = set(session.scalars(select(ContactIdentity.value).where(ContactIdentity.kind == "phone")))
    phones, notes = _crm_records(crms)
    everyone = stream.everyone
    again = [checks.one_contact_per_person(runtime.sessions, everyone),
             checks.one_record_per_person(phones, notes, everyone, exactly={p.e164 for p in everyone} & seen)]
    return [checks.everything_delivered(runtime.sessions),
            *(replace(check, name=f"{check.name} (after the replay)") for check in again)]
