"""Listing, showing and replaying stored events: the plain functions behind the admin API and the CLI."""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.credential_mask import credentials_of, masked_bytes, masked_text
from ingest.db import transaction
from ingest.events import raw_request_of, reset_for_replay
from ingest.listing import BadFilter, Page, filter_text, newest_first_page
from ingest.runtime import Runtime
from ingest.schema import FINAL_STATUSES, Event, EventStatus

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# An unescaped '+' in a query string arrives as a space: "09:00:00+03:00" pasted into a URL reads "09:00:00 03:00".
_OFFSET_AFTER_SPACE = re.compile(r"^(.*\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)$")


@dataclass(frozen=True)
class EventFilter:
    status: str | None = None
    source: str | None = None
    provider: str | None = None
    since: datetime | None = None

    @classmethod
    def parse(cls, status=None, source=None, provider=None, since=None) -> "EventFilter":
        """From request or command-line values: strings or None (anything else is a BadFilter naming the field)."""
        status, source, provider, since = (filter_text(name, value) for name, value in zip(
            ("status", "source", "provider", "since"), (status, source, provider, since)))
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


# What an event filter is given by: query parameters, JSON keys and (as --status …) command-line options.
FILTER_NAMES = tuple(field.name for field in fields(EventFilter))


def parse_since(text: str) -> datetime:
    """An ISO 8601 time (UTC if no zone) or a duration back from now: 30s, 15m, 2h, 7d, 1w; in UTC."""
    text = text.strip()
    try:
        match = _DURATION.match(text)
        if match:
            return datetime.now(timezone.utc) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        moment = datetime.fromisoformat(_OFFSET_AFTER_SPACE.sub(r"\1+\2", text))
        # In UTC now: a time at the edge of the calendar with an offset cannot be converted, and the columns
        # convert whatever they are given when the query binds it.
        return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    except OverflowError:
        raise BadFilter(f"since is out of range: {text!r} reaches past the year 1 or 9999") from None
    except ValueError:
        raise BadFilter(f"since must be an ISO 8601 time or a duration like 2h or 7d, not {text!r}") from None


def events_page(session: Session, event_filter: EventFilter, limit: int = 100, before: int | None = None) -> Page:
    """Matching events, newest first, with ids below `before`; the page's `next_before` leads to older ones."""
    return newest_first_page(session, event_filter.apply(select(Event)), Event.id, limit, before)


def event_summary(event: Event) -> dict:
    return {
        "id": event.id, "source": event.source, "provider": event.provider, "status": event.status,
        "received_at": _iso(event.received_at), "processed_at": _iso(event.processed_at),
        "attempts": event.attempts, "duplicate_count": event.duplicate_count,
        "error_class": event.error_class, "error_message": event.error_message,
        "purged_at": _iso(event.purged_at),
    }


def event_detail(event: Event) -> dict:
    """The event with its raw request, credentials inside it masked (`crm-ingest replay` still uses the stored one)."""
    body = event.body or b""
    credentials = credentials_of(event.provider, raw_request_of(event))
    try:
        body_text, body_base64 = masked_text(body.decode("utf-8"), credentials), None
    except UnicodeDecodeError:
        body_text, body_base64 = None, base64.b64encode(masked_bytes(body, credentials)).decode("ascii")
    body_size = len(body)
    if event.purged_at is not None:  # removed, not empty: neither its text nor its size is known any more
        body_text = body_size = None
    return {
        **event_summary(event),
        "dedup_key": event.dedup_key, "enqueued_at": _iso(event.enqueued_at),
        "last_duplicate_at": _iso(event.last_duplicate_at),
        "request": {
            "method": event.method, "path": event.path,
            "query_string": masked_text(event.query_string, credentials),
            # A proxy's X-Original-URI or X-Forwarded-Uri repeats the query string, credential included.
            "headers": {name: masked_text(value, credentials) for name, value in (event.headers or {}).items()},
            "content_type": event.content_type, "remote_addr": event.remote_addr,
            "body_size": body_size, "body": body_text, "body_base64": body_base64,
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
    """Replay every finished, unpurged event matching the filter (dry run: only count them).

    `replayable` is what a real run replays (unless workers finish or claim events in between); purged events and
    events not finished yet (`not_finished`: received or processing) are counted and left alone. An empty filter is
    a BadFilter: replaying every stored event is never what a forgotten or mistyped filter meant."""
    if event_filter == EventFilter():
        raise BadFilter(f"name at least one of {', '.join(FILTER_NAMES)}")
    replayable_filter = (Event.status.in_(FINAL_STATUSES), Event.purged_at.is_(None))
    with runtime.sessions() as session:
        counts = session.execute(event_filter.apply(select(
            func.count(Event.id),
            func.count(Event.id).filter(Event.purged_at.is_not(None)),
            func.count(Event.id).filter(Event.status.not_in(FINAL_STATUSES), Event.purged_at.is_(None)),
        ))).one()
        matching, purged, not_finished = (int(count or 0) for count in counts)
        report = {"matching": matching, "purged": purged, "not_finished": not_finished,
                  "replayable": matching - purged - not_finished}
        if dry_run:
            return {"dry_run": True, **report, "replayed": 0}
        ids = list(session.scalars(event_filter.apply(select(Event.id)).where(*replayable_filter).order_by(Event.id)))
    replayed = 0
    for start in range(0, len(ids), batch):
        replayed += len(replay_events(runtime, ids[start:start + batch]))
    return {"dry_run": False, **report, "replayed": replayed}


def purged_message(event: Event) -> str:
    return (f"event {event.id} cannot be replayed: its raw request was purged at {_iso(event.purged_at)} "
            f"(retention or erasure); its metadata is kept")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
