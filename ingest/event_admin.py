"""Listing, showing and replaying stored events: the plain functions behind the admin API and the CLI."""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.db import transaction
from ingest.events import reset_for_replay
from ingest.runtime import Runtime
from ingest.schema import Event, EventStatus

MAX_LIST_LIMIT = 1000
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class BadFilter(ValueError):
    pass


@dataclass(frozen=True)
class EventFilter:
    status: str | None = None
    source: str | None = None
    provider: str | None = None
    since: datetime | None = None

    @classmethod
    def parse(cls, status=None, source=None, provider=None, since=None) -> "EventFilter":
        if status and status not in set(EventStatus):
            raise BadFilter(f"status must be one of {', '.join(EventStatus)}")
        return cls(status or None, source or None, provider or None, parse_since(since) if since else None)

    def apply(self, query):
        if self.status:
            query = query.where(Event.status == self.status)
        if self.source:
            query = query.where(Event.source == self.source)
        if self.provider:
            query = query.where(Event.provider == self.provider)
        if self.since:
            query = query.where(Event.received_at >= self.since)
        return query


def parse_since(text: str) -> datetime:
    """An ISO 8601 time (UTC if no zone) or a duration back from now: 30s, 15m, 2h, 7d, 1w."""
    match = _DURATION.match(text.strip())
    if match:
        return datetime.now(timezone.utc) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadFilter(f"since must be an ISO 8601 time or a duration like 2h or 7d, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def list_events(session: Session, event_filter: EventFilter, limit: int = 100) -> list[Event]:
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    query = event_filter.apply(select(Event)).order_by(Event.received_at.desc(), Event.id.desc()).limit(limit)
    return list(session.scalars(query))


def count_events(session: Session, event_filter: EventFilter) -> int:
    return session.scalar(event_filter.apply(select(func.count(Event.id))))


def event_summary(event: Event) -> dict:
    return {
        "id": event.id, "source": event.source, "provider": event.provider, "status": event.status,
        "received_at": _iso(event.received_at), "processed_at": _iso(event.processed_at),
        "attempts": event.attempts, "duplicate_count": event.duplicate_count,
        "error_class": event.error_class, "error_message": event.error_message,
        "purged_at": _iso(event.purged_at),
    }


def event_detail(event: Event) -> dict:
    body = event.body or b""
    try:
        body_text, body_base64 = body.decode("utf-8"), None
    except UnicodeDecodeError:
        body_text, body_base64 = None, base64.b64encode(body).decode("ascii")
    if event.purged_at is not None:  # removed, not empty
        body_text = None
    return {
        **event_summary(event),
        "dedup_key": event.dedup_key, "enqueued_at": _iso(event.enqueued_at),
        "last_duplicate_at": _iso(event.last_duplicate_at),
        "request": {
            "method": event.method, "path": event.path, "query_string": event.query_string,
            "headers": event.headers, "content_type": event.content_type, "remote_addr": event.remote_addr,
            "body_size": len(body), "body": body_text, "body_base64": body_base64,
        },
        "result": event.result,
    }


def replay_events(runtime: Runtime, event_ids: list[int]) -> list[int]:
    """Re-run the current code over the stored requests; returns the ids actually put back in the queue.

    Purged events are left out: their raw request is gone (see `purged_message`)."""
    with transaction(runtime.sessions) as session:
        replayed = reset_for_replay(session, event_ids)
    runtime.outbox.publish(replayed)
    return [event.id for event in replayed]


def replay_matching(runtime: Runtime, event_filter: EventFilter, dry_run: bool, batch: int = 500) -> dict:
    """Replay every event matching the filter (dry run: only count them); purged events are counted, not replayed."""
    with runtime.sessions() as session:
        matching = count_events(session, event_filter)
        purged = session.scalar(event_filter.apply(select(func.count(Event.id))).where(Event.purged_at.is_not(None)))
        if dry_run:
            return {"dry_run": True, "matching": matching, "purged": purged, "replayed": 0}
        ids = list(session.scalars(event_filter.apply(select(Event.id)).where(Event.purged_at.is_(None))
                                   .order_by(Event.id)))
    replayed = 0
    for start in range(0, len(ids), batch):
        replayed += len(replay_events(runtime, ids[start:start + batch]))
    return {"dry_run": False, "matching": matching, "purged": purged, "replayed": replayed}


def purged_message(event: Event) -> str:
    return (f"event {event.id} cannot be replayed: its raw request was purged at {_iso(event.purged_at)} "
            f"(retention or erasure); its metadata is kept")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
