"""The chaos scenario itself, shared by `python -m bench.chaos` (thousands of payloads) and `tests/chaos` (hundreds).

One run: start the deployment on a private schema and broker; send the stream with the CRM faults on while the
monkey kills workers and restarts the broker; stop the faults and wait until nothing moves; check; replay the dead
with the CLI; wait again; check again. It returns a `ChaosReport` and leaves judging to the caller.
"""
from __future__ import annotations

import random
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sqlalchemy import func, select

from bench import chaos_checks as checks
from bench.chaos_faults import CLIENT_TIMEOUT_SECONDS, ChaosMonkey, injected, switch_crm_faults_off, \
    switch_crm_faults_on
from bench.chaos_report import ChaosReport
from bench.chaos_stream import build_stream
from bench.crm import IndexedHubSpot
from bench.load import run_load
from bench.redis_server import RedisServer
from bench.services import private_services
from bench.traffic import SOURCES, wire_bytes
from bench.workers import Deployment
from crm_sync.delivery.wake import DELIVER_QUEUE
from crm_sync.schema import ContactIdentity, Delivery, DeliveryStatus
from ingest.outbox import INGEST_QUEUE, MAINTENANCE_QUEUE
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
QUIET_POLL_SECONDS = 0.5
BROKER_QUEUES = (INGEST_QUEUE, DELIVER_QUEUE, MAINTENANCE_QUEUE)


def run_chaos(settings: "ChaosSettings", progress: Callable[[str], None] = lambda line: None) -> ChaosReport:
    return ChaosRun(settings, progress).run()


class ChaosRun:
    def __init__(self, settings: "ChaosSettings", progress: Callable[[str], None]):
        self.settings, self.progress = settings, progress
        self.report = ChaosReport(settings)
        self.rng = random.Random(settings.seed)
        self.stream = build_stream(self.rng, settings.payloads, settings.people, settings.rate, settings.redelivered)
        self.started = time.monotonic()

    def note(self, line: str) -> None:
        self.progress(f"{time.monotonic() - self.started:6.1f}s chaos: {line}")

    def run(self) -> ChaosReport:
        stream = self.stream
        self.report.stream = {"payloads": stream.payloads, "sends": len(stream.sends),
                              "redelivered": stream.redelivered, "seconds": round(stream.seconds, 1),
                              "people": len(stream.everyone)}
        with ExitStack() as resources:
            workdir = Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="crm-ingest-chaos-")))
            self.redis = resources.enter_context(RedisServer(workdir))
            services = resources.enter_context(private_services(self.settings.database_url, self.redis.url))
            self.crms = {"hubspot": resources.enter_context(IndexedHubSpot().running()),
                         "pipedrive": resources.enter_context(fake_pipedrive.PipedriveFake().running())}
            config = services.write_config(workdir / "crm-ingest.toml", workdir / "data", SOURCES,
                                           self._destinations(), **PIPELINE_SETTINGS)
            self.runtime = Runtime(load_settings(config))
            resources.callback(self.runtime.close)
            self.deployment = Deployment(config, workdir, workers=self.settings.workers,
                                         concurrency=self.settings.concurrency, beat=True)
            resources.callback(self.deployment.stop)
            try:
                self._phases()
            except Exception:
                self.progress(self.deployment.log_tails())
                raise
        self.report.seconds = time.monotonic() - self.started
        return self.report

    def _destinations(self) -> dict[str, dict]:
        hubspot, pipedrive = self.crms["hubspot"], self.crms["pipedrive"]
        return {"hubspot-main": {"kind": "hubspot", "base_url": hubspot.url, "token": fake_hubspot.TOKEN, **RETRIES},
                "pipedrive": {"kind": "pipedrive", "base_url": pipedrive.url, "api_token": fake_pipedrive.TOKEN,
                              **RETRIES}}

    def _phases(self) -> None:
        self.note(f"starting web, {self.settings.workers} workers and beat")
        self.deployment.start()
        statuses = self._send_with_faults()
        self.note("faults off; waiting until nothing moves")
        self._wait_quiet()
        self.note("quiet; checking")
        self.report.first_round = self._snapshot()
        self.report.checks += self._invariants(statuses)
        self.note("replaying dead events and retrying dead deliveries")
        for command in (("replay", "--status", "dead"), ("deliveries", "retry", "--status", "dead")):
            self.report.operator.append(f"crm-ingest {' '.join(command)}: {self.deployment.cli(*command)}")
        self._wait_quiet()
        self.note("quiet again; checking")
        self.report.final = self._snapshot()
        self.report.checks += self._invariants_after_replay()

    # --- the stream, under fire -------------------------------------------------------------------------------

    def _send_with_faults(self) -> dict[int, int]:
        """Send the stream while the CRMs fail and the monkey strikes; {request number: HTTP status}."""
        for offset, fake in enumerate(self.crms.values()):
            switch_crm_faults_on(fake, self.settings.failure_rate, self.settings.seed + offset)
        monkey = ChaosMonkey(self.rng, self.deployment.workers, self.redis, self.settings.kills, self.stream.seconds,
                             self._in_flight)
        self.note(f"sending {len(self.stream.sends)} requests over {self.stream.seconds:.0f}s with faults on")
        statuses: dict[int, int] = {}
        errors: dict[str, int] = {}
        sender = threading.Thread(target=self._send, args=(statuses, errors), name="chaos-sender")
        sender.start()
        monkey.run(time.monotonic())
        sender.join()
        resent = self._send_again_unanswered(statuses)
        for fake in self.crms.values():
            switch_crm_faults_off(fake)
        self.report.incidents = monkey.incidents
        self.report.crm_faults = {name: injected(fake) for name, fake in self.crms.items()}
        self.report.responses = {"statuses": dict(Counter(statuses.values())), "connection_errors": errors,
                                 "sent_again": resent}
        return statuses

    def _send(self, statuses: dict[int, int], errors: dict[str, int]) -> None:
        sends, port = self.stream.sends, self.deployment.web.port
        wire = [wire_bytes(send.request, port) for send in sends]
        result = run_load("127.0.0.1", port, wire.__getitem__, first=0, max_requests=len(wire),
                          max_seconds=self.stream.seconds + self.settings.settle_seconds,
                          concurrency=self.settings.connections, schedule=lambda number: sends[number].at,
                          on_response=lambda number, status, _sent, _acked: statuses.__setitem__(number, status))
        errors.update(result.errors)

    def _send_again_unanswered(self, statuses: dict[int, int], rounds: int = 5) -> int:
        """A request that got no response (a keep-alive connection the server closed just as it was sent) is sent
        again, as a provider retries what was not acknowledged; how many were."""
        resent = 0
        for _ in range(rounds):
            missing = [number for number in range(len(self.stream.sends)) if number not in statuses]
            if not missing:
                break
            resent += len(missing)
            port = self.deployment.web.port
            for number in missing:
                run_load("127.0.0.1", port, lambda n: wire_bytes(self.stream.sends[n].request, port), first=number,
                         max_requests=1, max_seconds=30, concurrency=1,
                         on_response=lambda n, status, _sent, _acked: statuses.__setitem__(n, status))
        return resent

    def _in_flight(self) -> str:
        """What a fault striking now interrupts: events being processed, deliveries being sent, messages queued."""
        import redis

        with self.runtime.sessions() as session:
            events = session.scalar(select(func.count()).select_from(Event)
                                    .where(Event.status == EventStatus.PROCESSING))
            deliveries = session.scalar(select(func.count()).select_from(Delivery)
                                        .where(Delivery.status == DeliveryStatus.IN_FLIGHT))
        prefix = self.runtime.settings.broker_key_prefix
        client = redis.Redis.from_url(self.redis.url, socket_timeout=1)
        try:
            queued = sum(client.llen(f"{prefix}{queue}") for queue in BROKER_QUEUES)
        except redis.RedisError:
            queued = "?"
        finally:
            client.close()
        return f"{events} event(s) processing, {deliveries} delivery(ies) in flight, {queued} message(s) queued"

    # --- settling and looking -----------------------------------------------------------------------------------

    def _wait_quiet(self) -> None:
        """Until every event is finished and every delivery succeeded or dead (beat keeps sweeping meanwhile)."""
        deadline = time.monotonic() + self.settings.settle_seconds
        while True:
            with self.runtime.sessions() as session:
                events = session.scalar(select(func.count()).select_from(Event)
                                        .where(Event.status.in_(UNFINISHED_EVENTS)))
                deliveries = session.scalar(select(func.count()).select_from(Delivery)
                                            .where(Delivery.status.in_(UNFINISHED_DELIVERIES)))
            if not events and not deliveries:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"still moving after {self.settings.settle_seconds:g}s: {events} event(s), "
                                   f"{deliveries} delivery(ies) unfinished")
            time.sleep(QUIET_POLL_SECONDS)

    def _snapshot(self) -> dict:
        with self.runtime.sessions() as session:
            def grouped(column, *where) -> dict:
                return dict(session.execute(select(column, func.count()).where(*where).group_by(column)).all())

            return {
                "events": grouped(Event.status),
                "dead_events_by_reason": grouped(Event.error_class, Event.status == EventStatus.DEAD),
                "deliveries": grouped(Delivery.status),
                "dead_deliveries_by_reason": grouped(Delivery.last_error_class,
                                                     Delivery.status == DeliveryStatus.DEAD),
                "events_processed_more_than_once": session.scalar(
                    select(func.count()).select_from(Event).where(Event.attempts > 1)),
                "delivery_retries": session.scalar(select(func.coalesce(func.sum(Delivery.attempts - 1), 0))
                                                   .where(Delivery.attempts > 1)),
                "redeliveries_counted": session.scalar(select(func.coalesce(func.sum(Event.duplicate_count), 0))),
            }

    def _crm_records(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """{CRM: each person record's phone}, {CRM: each note's text}."""
        hubspot, pipedrive = self.crms["hubspot"], self.crms["pipedrive"]
        with hubspot.lock, pipedrive.lock:
            phones = {"hubspot": [c["properties"].get("phone") or "" for c in hubspot.contacts.values()],
                      "pipedrive": [(p["phones"] or [{"value": ""}])[0]["value"] for p in pipedrive.persons.values()]}
            notes = {"hubspot": [n["properties"].get("hs_note_body") or "" for n in hubspot.notes.values()],
                     "pipedrive": [n.get("content") or "" for n in pipedrive.notes.values()]}
        return phones, notes

    def _invariants(self, statuses: dict[int, int]) -> list[checks.Check]:
        sessions, everyone = self.runtime.sessions, self.stream.everyone
        phones, notes = self._crm_records()
        return [checks.acknowledged_requests_are_stored(sessions, self.stream.sends, statuses),
                checks.events_are_finished(sessions),
                checks.one_contact_per_person(sessions, everyone),
                checks.one_record_per_person(phones, notes, everyone)]

    def _invariants_after_replay(self) -> list[checks.Check]:
        sessions, everyone = self.runtime.sessions, self.stream.everyone
        with sessions() as session:
            seen = set(session.scalars(select(ContactIdentity.value).where(ContactIdentity.kind == "phone")))
        phones, notes = self._crm_records()
        again = [checks.one_contact_per_person(sessions, everyone),
                 checks.one_record_per_person(phones, notes, everyone, exactly={p.e164 for p in everyone} & seen)]
        return [checks.everything_delivered(sessions),
                *(replace(check, name=f"{check.name} (after the replay)") for check in again)]
