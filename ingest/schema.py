"""The SQLAlchemy schema of the raw event store. Changed only together with an Alembic migration."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, LargeBinary, MetaData, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in and out, also on SQLite, which stores datetimes without a zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class EventStatus(StrEnum):
    RECEIVED = "received"      # stored, waiting for a worker
    PROCESSING = "processing"  # a worker claimed it (or died holding it: the relay re-enqueues stale ones)
    PROCESSED = "processed"
    IGNORED = "ignored"        # understood, deliberately produced nothing (reason in error_message)
    DEAD = "dead"              # could not be processed (reason class + message); replayable


FINAL_STATUSES = (EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.DEAD)


class Event(Base):
    """One webhook request, stored byte-exact before it was acknowledged."""

    __tablename__ = "events"
    __table_args__ = (
        Index("uq_events_source_dedup_key", "source", "dedup_key", unique=True),
        Index("ix_events_status_enqueued_at", "status", "enqueued_at"),
        Index("ix_events_received_at", "received_at"),
        Index("ix_events_source_received_at", "source", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(200))
    dedup_key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    query_string: Mapped[str] = mapped_column(Text, default="")
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(Text, default="")
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    last_duplicate_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.RECEIVED)
    enqueued_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None]
    error_class: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    # Set when the raw request (body, headers, query string) was removed by the retention purge or an erasure;
    # the metadata stays, and the event can no longer be replayed.
    purged_at: Mapped[datetime | None]


class Erasure(Base):
    """The tombstone of one right-to-erasure request: what was erased, when and by which command.

    Never the erased values themselves: only ids, counts and which kinds of identifier (email, phone) were given.
    The CRM records linked to the person are listed, because they must be erased in each CRM by hand.
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    command: Mapped[str] = mapped_column(String(200))         # e.g. "crm-ingest forget", "POST /api/forget"
    matched_by: Mapped[list[Any]] = mapped_column(default=list)  # ["email"], ["phone"], ["email", "phone"]
    contact_ids: Mapped[list[Any]] = mapped_column(default=list)
    interaction_ids: Mapped[list[Any]] = mapped_column(default=list)
    event_ids: Mapped[list[Any]] = mapped_column(default=list)
    delivery_ids: Mapped[list[Any]] = mapped_column(default=list)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    crm_records: Mapped[list[Any]] = mapped_column(default=list)  # [{destination, record_id, url}] to erase by hand
    # Events a worker held while the erasure ran: left untouched; run the erasure again once they have finished.
    in_flight_event_ids: Mapped[list[Any]] = mapped_column(default=list)
