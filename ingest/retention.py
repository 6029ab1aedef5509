"""Retention: the raw requests of finished events are removed after a while; what happened to them is kept.

A purged event keeps its id, source, provider, dedup key, status, times, counters and error class, so metrics,
deduplication of late redeliveries and the admin API still work. Its body, headers and query string (personal data,
and for some providers credentials) are removed, as are the canonical records kept in `result` (names, emails,
transcripts); the ids of what it produced stay. Its error message is kept with emails, phones and message text
masked. A purged event cannot be replayed: there is nothing left to re-run the current code on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ingest.db import transaction
from ingest.redaction import redact
from ingest.schema import FINAL_STATUSES, Event, utcnow

log = logging.getLogger(__name__)
BATCH = 1000
# What `result` keeps after a purge: ids of what the event produced, nothing the person wrote.
RESULT_KEYS_KEPT = ("contact_ids", "interaction_ids", "merged")


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime
    events: int
    body_bytes: int
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat(), "events": self.events, "body_bytes": self.body_bytes,
                "dry_run": self.dry_run}


def _purgeable(cutoff: datetime):
    return Event.status.in_(FINAL_STATUSES), Event.received_at < cutoff, Event.purged_at.is_(None)


def purge_raw_requests(sessions: sessionmaker[Session], cutoff: datetime, dry_run: bool = False,
                       batch: int = BATCH) -> PurgeReport:
    """Purge finished events received before `cutoff`, a batch per transaction (dry run: only count them)."""
    if dry_run:
        with sessions() as session:
            count, size = session.execute(select(func.count(), func.coalesce(func.sum(func.length(Event.body)), 0))
                                          .where(*_purgeable(cutoff))).one()
        return PurgeReport(cutoff, count, int(size), True)
    events = size = 0
    after = 0
    while True:
        with transaction(sessions) as session:
            done, done_bytes, after = _purge_batch(session, cutoff, batch, after)
        events, size = events + done, size + done_bytes
        if done < batch:
            return PurgeReport(cutoff, events, size, False)


def batch_query(cutoff: datetime, batch: int, after: int = 0) -> Select:
    """The next batch to purge, in id order from where the run's last batch ended (`after`: its last id). Each
    batch used to start from the first id again and walk every row purged before it; now a run walks the table
    once."""
    return (select(Event.id, func.length(Event.body), Event.result, Event.error_message)
            .where(Event.id > after, *_purgeable(cutoff)).order_by(Event.id).limit(batch))


def _purge_batch(session: Session, cutoff: datetime, batch: int, after: int) -> tuple[int, int, int]:
    rows = session.execute(batch_query(cutoff, batch, after)).all()
    if rows:
        purge_rows(session, [(row[0], row[2], row[3]) for row in rows], finished_only=True)
    return len(rows), sum(row[1] or 0 for row in rows), rows[-1][0] if rows else after


def purge_rows(session: Session, rows: list[tuple[int, dict | None, str | None]], finished_only: bool) -> None:
    """Remove the raw request of each (id, result, error_message); `finished_only` leaves events put back in the
    queue meanwhile (a replay) untouched."""
    table = Event.__table__
    statement = update(table).where(table.c.id == bindparam("event_id"))
    if finished_only:
        # Spelled out: an IN list cannot be used with one statement executed for many rows.
        statement = statement.where(or_(*(table.c.status == status for status in FINAL_STATUSES)))
    statement = statement.values(body=None, headers={}, query_string="", purged_at=utcnow(),
                                 result=bindparam("kept_result", type_=table.c.result.type),
                                 error_message=bindparam("kept_error", type_=table.c.error_message.type))
    session.connection().execute(statement, [
        {"event_id": event_id, "kept_result": slim_result(result), "kept_error": redact(error) if error else error}
        for event_id, result, error in rows
    ])


def slim_result(result: dict | None) -> dict | None:
    if not result:
        return None
    return {key: result[key] for key in RESULT_KEYS_KEPT if key in result} or None


PURGE_TASK = "maintenance.purge_raw_requests"


def run_retention(sessions: sessionmaker[Session], retention_days: int | None) -> PurgeReport | None:
    """The daily beat job: purge what is older than `retention_days` (nothing when retention is off)."""
    if not retention_days:
        return None
    report = purge_raw_requests(sessions, utcnow() - timedelta(days=retention_days))
    from crm_sync.metrics import events_purged

    events_purged(report.events)
    log.info("retention: purged the raw requests of %d event(s) received before %s", report.events,
             report.cutoff.isoformat(timespec="seconds"), extra={"outcome": "purged"})
    return report
