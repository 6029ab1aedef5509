"""The contact store's tables, on the same metadata as the raw event store (one Alembic history for both).

Identity rows are unique by (kind, value, scope): whoever inserts one first owns it, which is what makes "one person,
one contact" hold under any concurrency. Ids a provider hands out (visitor ids, conversation and lead ids) are scoped
by the source, because a source is one provider account and two accounts number their visitors and leads
independently; emails, phones and CRM ids are global (scope "").

Rows refer to events by id without a foreign key, so purging old raw events never touches what they produced.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.delivery_keys import idempotency_key
from ingest.schema import Base, BigId, utcnow

# A reference to a BigId column (same type on each dialect).
BigRef = BigInteger().with_variant(Integer(), "sqlite")


CRM_KIND_PREFIX = "crm."  # identity kind of a CRM record: crm.<destination name>


class IdentityRole:
    PERSON = "person"            # an email, phone, provider visitor id or CRM record id of the person
    INTERACTION = "interaction"  # a conversation or lead id: whoever it is about is one person
    EVENT = "event"              # the only handle of an anonymous person: makes reprocessing find the same contact


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_merged_into", "merged_into"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Set on the loser of a merge: always the surviving contact itself (chains are collapsed when they form).
    merged_into: Mapped[int | None] = mapped_column(BigRef, ForeignKey("contacts.id"))
    merged_at: Mapped[datetime | None]
    merged_by_event_id: Mapped[int | None] = mapped_column(BigRef)
    # Display values, chosen from contact_values by the primary policy; every value seen stays in contact_values.
    name: Mapped[str | None] = mapped_column(Text)
    company: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    primary_email: Mapped[str | None] = mapped_column(String(512))
    primary_phone: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactIdentity(Base):
    __tablename__ = "contact_identities"
    __table_args__ = (
        Index("uq_contact_identities_kind_value_scope", "kind", "value", "scope", unique=True),
        Index("ix_contact_identities_contact_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(100))   # email, phone, jivo.client_id, crm.<destination>, ...
    value: Mapped[str] = mapped_column(String(512))  # the normal form
    scope: Mapped[str] = mapped_column(String(100), default="")  # the source, for ids a provider account hands out
    contact_id: Mapped[int] = mapped_column(BigRef, ForeignKey("contacts.id"))
    role: Mapped[str] = mapped_column(String(16), default=IdentityRole.PERSON)
    first_event_id: Mapped[int | None] = mapped_column(BigRef)
    source: Mapped[str | None] = mapped_column(String(100))
    url: Mapped[str | None] = mapped_column(Text)  # a CRM record's page, for crm.<destination> identities
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactValue(Base):
    """Every value a provider sent about a contact, with where and when it was first and last seen."""

    __tablename__ = "contact_values"
    __table_args__ = (
        Index("uq_contact_values_contact_id_field_value_hash", "contact_id", "field", "value_hash", unique=True),
        Index("ix_contact_values_field_value_hash", "field", "value_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[int] = mapped_column(BigRef, ForeignKey("contacts.id"))
    field: Mapped[str] = mapped_column(String(200))  # name, company, email, phone, attribute.<key>, ...
    value: Mapped[str] = mapped_column(Text)         # as the provider wrote it
    value_hash: Mapped[str] = mapped_column(String(64))
    normalised: Mapped[str | None] = mapped_column(String(512))  # emails and phones that parse
    # "When" is the event's place in arrival order (event id, then position in the payload), so the primary policy
    # gives the same answer whatever order the events are processed in.
    first_event_id: Mapped[int] = mapped_column(BigRef)
    first_position: Mapped[int] = mapped_column(Integer)
    last_event_id: Mapped[int] = mapped_column(BigRef)
    last_position: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    provider: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(100))


class StoredInteraction(Base):
    __tablename__ = "interactions"
    __table_args__ = (
        Index("uq_interactions_source_provider_natural_key", "source", "provider", "natural_key", unique=True),
        Index("ix_interactions_contact_id_occurred_at", "contact_id", "occurred_at"),
        Index("ix_interactions_provider_updated_at", "provider", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[int | None] = mapped_column(BigRef, ForeignKey("contacts.id"))
    provider: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(100))   # the provider account that reported it
    # conversation:<id>, <kind>:<external id> or event:<event id>:<record index> within the source; hashed if too long.
    natural_key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[int] = mapped_column(BigRef)  # the first stored event that produced it
    conversation_id: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # transcript, tags, agent, page, utm, lead, ...
    # Which event last set each field ("subject": [event id, record index]): the newest report wins in any order.
    field_sources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class InteractionEvent(Base):
    """Every event that reported an interaction."""

    __tablename__ = "interaction_events"

    interaction_id: Mapped[int] = mapped_column(BigRef, ForeignKey("interactions.id"), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigRef, primary_key=True)
    record_index: Mapped[int] = mapped_column(Integer, default=0)
    event_type: Mapped[str] = mapped_column(String(200))


class DeliveryStatus:
    PENDING = "pending"      # due at next_attempt_at
    IN_FLIGHT = "in_flight"  # claimed by the destination's drainer (or orphaned by a dead one: claimed again)
    SUCCEEDED = "succeeded"  # delivered_revision reached the CRM
    FAILED = "failed"        # a transient failure; tried again at next_attempt_at
    DEAD = "dead"            # a permanent failure or retries exhausted (reason in last_error_class); retriable

    ALL = (PENDING, IN_FLIGHT, SUCCEEDED, FAILED, DEAD)
    RETRIABLE = (FAILED, DEAD)


class Delivery(Base):
    """One interaction for one destination. `revision` counts what should be delivered; a bump re-arms the row.

    `attempts` is never reset: a CRM module looks for its own earlier write when attempt > 1, so a retry or a
    replay continues the count. The retry budget of the current round is attempts - attempts_at_arming, its age
    runs from armed_at (creation, a new revision, or a manual retry); an attempt the CRM answered with "not now" (a
    rate limit) is given back to the budget by raising attempts_at_arming, so only the age ends a throttled delivery.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("uq_deliveries_interaction_id_destination", "interaction_id", "destination", unique=True),
        Index("ix_deliveries_destination_status_next_attempt_at", "destination", "status", "next_attempt_at"),
        Index("ix_deliveries_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(100))
    interaction_id: Mapped[int] = mapped_column(BigRef, ForeignKey("interactions.id"))
    contact_id: Mapped[int | None] = mapped_column(BigRef)   # at planning time; delivery resolves merges anew
    revision: Mapped[int] = mapped_column(Integer, default=1)
    delivered_revision: Mapped[int | None] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))      # what the revision stands for (see planning)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempts_at_arming: Mapped[int] = mapped_column(Integer, default=0)
    armed_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None]
    first_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)     # the CRM's HTTP status of the last failure
    last_error_class: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    crm_contact_id: Mapped[str | None] = mapped_column(String(255))
    crm_interaction_id: Mapped[str | None] = mapped_column(String(255))
    crm_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.destination, self.interaction_id, self.revision)


class DestinationState(Base):
    """Per destination, shared by every worker on every machine: the drain lease, the rate bucket, the breaker."""

    __tablename__ = "destination_states"

    destination: Mapped[str] = mapped_column(String(100), primary_key=True)
    # At most one drainer per destination: whoever holds an unexpired lease.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    # Token bucket; its clock is Unix seconds so the refill is plain arithmetic in one conditional UPDATE.
    tokens: Mapped[float] = mapped_column(Float, default=0.0)
    tokens_at: Mapped[float] = mapped_column(Float, default=0.0)
    calls_per_delivery: Mapped[float] = mapped_column(Float, default=1.0)   # running estimate, sizes batches
    # Halved by a batch that failed as a whole, doubled by one that got through: a flaky CRM gets small batches.
    batch_limit: Mapped[int | None] = mapped_column(Integer)
    # Nothing is attempted before this (the CRM's Retry-After for the account, or our bucket is empty).
    throttled_until: Mapped[datetime | None]
    # Circuit breaker: open after consecutive failed batches; each re-opening doubles the cool-down.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    circuit_opened: Mapped[int] = mapped_column(Integer, default=0)
    circuit_open_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
