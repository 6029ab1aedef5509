"""The benchmark's private share of the real services: a PostgreSQL schema and a Redis key prefix, both removed after
the run, and the config file the hooks server reads."""
from __future__ import annotations

import base64
import json

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bench.servers import cpu_seconds_of

from ingest.db import migrate
from ingest.outbox import INGEST_QUEUE


@dataclass(frozen=True)
class Services:
    database_url: str  # the private schema's URL
    redis_url: str
    key_prefix: str
    application_name: str = ""  # every connection of the run says so in pg_stat_activity

    def backend_cpu_seconds(self) -> dict[int, float]:
        """{pid: CPU seconds so far} of the PostgreSQL backends serving this run's connections right now."""
        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                pids = connection.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :name AND pid <> pg_backend_pid()"
                ), {"name": self.application_name}).scalars().all()
        finally:
            engine.dispose()
        return {pid: cpu_seconds_of(pid) for pid in pids}

    def write_config(self, path: Path, data_dir: Path, sources: dict[str, dict[str, Any]],
                     destinations: dict[str, dict[str, Any]] | None = None, **settings: Any) -> Path:
        """crm-ingest.toml for the processes: these services, sources, destinations and other top-level keys."""
        top = {"database_url": self.database_url, "broker_url": self.redis_url, "broker_key_prefix": self.key_prefix,
               "data_dir": str(data_dir), **settings}
        lines = [f"{key} = {json.dumps(value)}" for key, value in top.items()]
        for section, entries in (("sources", sources), ("destinations", destinations or {})):
            for name, fields in entries.items():
                lines.append(f"[{section}.{json.dumps(name)}]")
                lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def stored_events(self, source: str) -> tuple[int, int]:
        """Events stored for `source`, and how many of them the web process failed to publish (left for the relay)."""
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                row = connection.execute(text(
                    "SELECT count(*), count(*) FILTER (WHERE enqueued_at IS NULL) FROM events WHERE source = :source"
                ), {"source": source}).one()
        finally:
            engine.dispose()
        return row[0], row[1]

    def queued_events(self, expected: int, wait_seconds: float = 5.0) -> int:
        """Event ids carried by the messages waiting in the ingest queue (a message carries a batch of ids); waits
        a little for publishes that run after their response."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            deadline = time.monotonic() + wait_seconds
            while True:
                count = sum(_event_ids_in(raw) for raw in client.lrange(f"{self.key_prefix}{INGEST_QUEUE}", 0, -1))
                if count >= expected or time.monotonic() >= deadline:
                    return count
                time.sleep(0.1)
        finally:
            client.close()


@contextmanager
def private_services(server_database_url: str, redis_url: str) -> Iterator[Services]:
    """A migrated schema of its own in the given database and a Redis prefix of its own; both dropped afterwards."""
    run = uuid.uuid4().hex[:10]
    schema = f"bench_{run}"
    admin = create_engine(server_database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in server_database_url else "?"
    services = Services(f"{server_database_url}{separator}options={quote(f'-csearch_path={schema}')}"
                        f"&application_name={schema}", redis_url, f"bench-{run}:", schema)
    try:
        migrate(services.database_url)
        yield services
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
        _delete_keys(redis_url, services.key_prefix)


def _delete_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
    finally:
        client.close()


def _event_ids_in(raw_message: bytes) -> int:
    """How many event ids one kombu/Celery message on Redis carries (its body is base64 JSON: [args, kwargs, …])."""
    envelope = json.loads(raw_message)
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return len(json.loads(body)[0][0])
