"""Interactions: one row per conversation (or lead, ticket, call...), however many events report it, in any order.

Every report is merged so that the result does not depend on arrival or processing order, and reprocessing the same
event changes nothing:

- the state only moves forward (ConversationState.rank), the kind only towards the more specific one;
- `occurred_at` is the earliest reported, the first event is the lowest event id;
- transcript messages merge by id (or by time, author and text), tags union;
- every other field, and every key of utm/geo/extra, is taken from the newest report (event id, record index)
  that carries it: a late-processed old event cannot overwrite newer data;
- the agent and the page are those of the newest report, completed field by field by the reports of the same agent
  (id) or page (url) since the last report of another one: a message naming only its author's id keeps the name and
  email an earlier report gave.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any, Iterable

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from crm_sync.identity import Origin
from crm_sync.model import ConversationState, Interaction, InteractionKind, Message
from crm_sync.schema import InteractionEvent, StoredInteraction
from ingest.db import dialect_of, insert_for
from ingest.schema import utcnow

# From least to most specific: a conversation reported by a "message" and a "chat" event is a chat.
KIND_ORDER = [InteractionKind.CONTACT_UPDATE, InteractionKind.NOTE, InteractionKind.MESSAGE,
              InteractionKind.OFFLINE_MESSAGE, InteractionKind.LEAD, InteractionKind.TICKET, InteractionKind.CALL,
              InteractionKind.CHAT]
LATEST_WINS = ("subject", "lead")   # a lead is one snapshot of Roistat's form: its fields are not mixed across reports
MERGED_BY_IDENTITY = {"agent": "id", "page": "url"}   # field -> the sub-field that says who (or which) it is
_DUMPED = {*LATEST_WINS, *MERGED_BY_IDENTITY}
MERGED_BY_KEY = ("utm", "geo", "extra")
Stamp = list[int]  # [event id, record index]: JSON-friendly and comparable
INTERACTIONS, REPORTS = StoredInteraction.__table__, InteractionEvent.__table__
MERGED_COLUMNS = ("contact_id", "kind", "state", "subject", "occurred_at", "event_id", "details", "field_sources")
# Built once: every event runs these, and building a statement anew costs more CPU than running it.
_LOCK_STORED = select(INTERACTIONS.c.id, *(INTERACTIONS.c[name] for name in MERGED_COLUMNS)).where(
    INTERACTIONS.c.source == bindparam("stored_source"), INTERACTIONS.c.provider == bindparam("stored_provider"),
    INTERACTIONS.c.natural_key == bindparam("stored_natural_key")).with_for_update()
_UPDATE_STORED = update(INTERACTIONS).where(INTERACTIONS.c.id == bindparam("stored_id"))  # SET: the columns given


@cache
def _insert_statement(dialect: str):
    """A first report inserts the row; RETURNING says whether it was the first (nothing comes back on a conflict)."""
    return (insert_for(dialect)(INTERACTIONS)
            .on_conflict_do_nothing(index_elements=["source", "provider", "natural_key"])
            .returning(INTERACTIONS.c.id))


@cache
def _report_statement(dialect: str):
    return insert_for(dialect)(REPORTS).on_conflict_do_nothing(index_elements=["interaction_id", "event_id"])


@dataclass(frozen=True)
class RecordedInteraction:
    """An interaction as this transaction left it: what delivery planning needs."""

    id: int
    contact_id: int | None
    kind: str
    state: str | None
    details: dict[str, Any]
    report: dict[str, Any]   # its interaction_events row, written with the transaction's others (record_reports)


def record_interaction(session: Session, contact_id: int, interaction: Interaction, natural_key: str,
                       origin: Origin, index: int, event_type: str) -> RecordedInteraction:
    """Insert or merge the interaction. The caller holds the lock of the contact it belongs to, and writes the
    returned interaction's report row (`record_reports`) before its transaction ends."""
    now = utcnow()
    stamp = [origin.event_id, index]
    first = FirstReport(contact_id, interaction, natural_key, origin, index, event_type)
    after, row = first.row(now)
    inserted = session.execute(_insert_statement(dialect_of(session)), row).first()
    if inserted is not None:
        return first.recorded(inserted.id, after)
    key = {"source": origin.source, "provider": interaction.provider, "natural_key": natural_key}
    row = session.execute(_LOCK_STORED, {f"stored_{name}": value for name, value in key.items()}).one()
    interaction_id, before = row.id, snapshot(row)   # reported before: merge into what is stored
    after = merge_report(before, interaction, stamp)
    after["contact_id"] = contact_id  # moves an event-keyed interaction if a replay resolves the person anew
    if after != before:
        session.execute(_UPDATE_STORED, {"stored_id": interaction_id, **after, "updated_at": now})
    return first.recorded(interaction_id, after)


@dataclass(frozen=True)
class FirstReport:
    """A report of an interaction, as the first one: the row it inserts if nobody reported the interaction yet."""

    contact_id: int
    interaction: Interaction
    natural_key: str
    origin: Origin
    index: int
    event_type: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.origin.source, self.interaction.provider, self.natural_key

    def row(self, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        """The merged state of the interaction after this report alone, and the row that stores it."""
        after = merge_report(_unreported(self.contact_id, self.interaction, self.origin), self.interaction,
                             [self.origin.event_id, self.index])
        source, provider, natural_key = self.key
        return after, {"source": source, "provider": provider, "natural_key": natural_key, **after,
                       "conversation_id": self.interaction.conversation_id,
                       "external_id": self.interaction.external_id, "created_at": now, "updated_at": now}

    def recorded(self, interaction_id: int, after: dict[str, Any]) -> RecordedInteraction:
        report = {"interaction_id": interaction_id, "event_id": self.origin.event_id, "record_index": self.index,
                  "event_type": self.event_type[:200]}
        return RecordedInteraction(interaction_id, after["contact_id"], after["kind"], after["state"],
                                   after["details"], report)


def record_first_reports(session: Session, reports: list[FirstReport]) -> dict[tuple[int, int], RecordedInteraction]:
    """Interactions that no other report of the transaction names, each of a contact the transaction created: the
    first reports of the new ones inserted in one statement; {(event id, record index): interaction} for those.

    An interaction stored already (or by a concurrent transaction meanwhile) is left out: its event's own
    `record_interaction` merges the report into it."""
    if not reports:
        return {}
    now = utcnow()
    rows = {report.key: (report, *report.row(now)) for report in reports}
    inserted = session.execute(_first_reports_statement(dialect_of(session)),
                               [row for _, _, row in (rows[key] for key in sorted(rows))])
    recorded = {}
    for stored in inserted:
        report, after, _ = rows[(stored.source, stored.provider, stored.natural_key)]
        recorded[(report.origin.event_id, report.index)] = report.recorded(stored.id, after)
    return recorded


@cache
def _first_reports_statement(dialect: str):
    return _insert_statement(dialect).returning(INTERACTIONS.c.source, INTERACTIONS.c.provider,
                                                INTERACTIONS.c.natural_key)


def record_reports(session: Session, interactions: Iterable[RecordedInteraction | None]) -> None:
    """Which event reported which interaction, for every interaction a transaction recorded, in one statement.

    Nothing in a processing transaction reads these rows back (the admin API and erasure do), so they wait for the
    end of the transaction instead of costing every event a statement of its own."""
    reports = [interaction.report for interaction in interactions if interaction is not None]
    if reports:
        session.execute(_report_statement(dialect_of(session)), reports)


def _unreported(contact_id: int, interaction: Interaction, origin: Origin) -> dict[str, Any]:
    """The state of an interaction before its first report (the one a new row is inserted with, merged)."""
    return {"contact_id": contact_id, "kind": interaction.kind.value, "state": None, "subject": None,
            "occurred_at": None, "event_id": origin.event_id, "details": {}, "field_sources": {}}


def snapshot(row) -> dict[str, Any]:
    return {
        "contact_id": row.contact_id, "kind": row.kind, "state": row.state, "subject": row.subject,
        "occurred_at": row.occurred_at, "event_id": row.event_id,
        "details": json.loads(json.dumps(row.details or {})), "field_sources": dict(row.field_sources or {}),
    }


def merge_report(current: dict[str, Any], report: Interaction, stamp: Stamp) -> dict[str, Any]:
    """The interaction's state after one more report; a pure function of the set of reports seen."""
    merged = {**current, "details": dict(current["details"]), "field_sources": dict(current["field_sources"])}
    _merge_progress(merged, report, stamp)
    _merge_latest(merged, report, stamp)
    details = merged["details"]
    if report.tags:
        details["tags"] = sorted(set(details.get("tags", [])) | set(report.tags))
    if report.transcript:
        details["transcript"] = merge_transcript(details.get("transcript", []), report.transcript, stamp)
    merged["details"] = json.loads(json.dumps(details, default=_json_default))
    return merged


def _merge_progress(merged: dict[str, Any], report: Interaction, stamp: Stamp) -> None:
    """What only moves one way: kind to the more specific, state forward, start and first event to the earliest."""
    merged["kind"] = max(merged["kind"], report.kind.value, key=lambda kind: KIND_ORDER.index(InteractionKind(kind)))
    if report.state and (merged["state"] is None or report.state.rank > ConversationState(merged["state"]).rank):
        merged["state"] = report.state.value
    occurred_at = _utc(report.occurred_at)
    if occurred_at and (merged["occurred_at"] is None or occurred_at < merged["occurred_at"]):
        merged["occurred_at"] = occurred_at
    merged["event_id"] = min(merged["event_id"], stamp[0])


def _merge_latest(merged: dict[str, Any], report: Interaction, stamp: Stamp) -> None:
    """Fields, and keys of utm/geo/extra, from the newest report that carries them."""
    details, sources = merged["details"], merged["field_sources"]
    reported = report.model_dump(mode="json", include=_DUMPED)
    for name in LATEST_WINS:
        value = reported.get(name)
        if value not in (None, "", {}) and _newer(stamp, sources.get(name)):
            sources[name] = stamp
            if name == "subject":
                merged["subject"] = value
            else:
                details[name] = value
    for name, identity in MERGED_BY_IDENTITY.items():
        if reported.get(name):
            _merge_identified(details, sources, name, identity, reported[name], stamp)
    for name in MERGED_BY_KEY:
        for key, value in getattr(report, name).items():
            path = f"{name}.{key}"
            if value not in (None, "") and _newer(stamp, sources.get(path)):
                sources[path] = stamp
                details[name] = {**details.get(name, {}), key: value}


def _merge_identified(details: dict, sources: dict, name: str, identity: str, reported: dict, stamp: Stamp) -> None:
    """The newest report's agent (or page), each field from the newest report that has it among those of the same
    id since the last report of another. Stamps kept: the newest report's (`agent`), each field's (`agent.name`), and
    the newest replaced report's (`agent~other`), older than which a report is history and changes nothing."""
    values = {key: value for key, value in reported.items() if value not in (None, "")}
    if not values:
        return
    current = {key: value for key, value in (details.get(name) or {}).items() if value not in (None, "")}
    newest, other = sources.get(name), sources.get(f"{name}~other")
    same = values.get(identity) is not None and values.get(identity) == current.get(identity)
    if _newer(stamp, newest):
        sources[name] = stamp
        if not same:   # another agent: the one it replaces is now the newest report of another
            if newest is not None and list(newest) != list(stamp):
                sources[f"{name}~other"] = newest
            current = _forget_fields(current, sources, name, lambda known: True)
        fresh = values
    elif other is not None and list(stamp) <= list(other):
        return
    elif same:   # an older report of the same agent: it fills what no newer one of them says
        fresh = {key: value for key, value in values.items()
                 if _newer(stamp, _field_stamp(sources, name, key, current))}
    else:        # an older report of another agent: what the same agent said before it is history
        sources[f"{name}~other"] = stamp
        current = _forget_fields(current, sources, name, lambda known: list(known) < list(stamp))
        fresh = {}
    for key, value in fresh.items():
        current[key], sources[f"{name}.{key}"] = value, stamp
    details[name] = {**dict.fromkeys(reported), **current}


def _field_stamp(sources: dict, name: str, key: str, current: dict) -> Stamp | None:
    # A field stored before fields had their own stamps came with the newest report.
    return sources.get(f"{name}.{key}") or (sources.get(name) if key in current else None)


def _forget_fields(current: dict, sources: dict, name: str, forget) -> dict:
    """`current` without the fields whose stamp `forget` accepts (their stamps go too)."""
    forgotten = [key for key in current if forget(_field_stamp(sources, name, key, current) or [0, 0])]
    for key in forgotten:
        sources.pop(f"{name}.{key}", None)
    return {key: value for key, value in current.items() if key not in forgotten}


def merge_transcript(stored: list[dict], messages: list[Message], stamp: Stamp) -> list[dict]:
    by_key = {message["key"]: message for message in stored}
    for message in messages:
        entry = _message_entry(message, stamp)
        known = by_key.get(entry["key"])
        if known is None or _newer(stamp, known["stamp"]):
            by_key[entry["key"]] = entry
    return sorted(by_key.values(), key=lambda m: (m["at"] is None, m["at"] or "", m["key"]))


def _message_entry(message: Message, stamp: Stamp) -> dict:
    at = _utc(message.at)
    at_text = at.isoformat() if at else None
    key = f"id:{message.external_id}" if message.external_id else \
        "at:" + json.dumps([at_text, message.author, message.text], ensure_ascii=False)
    return {"key": key, "author": message.author, "author_name": message.author_name, "text": message.text,
            "at": at_text, "external_id": message.external_id, "stamp": stamp}


def _newer(stamp: Stamp, known: Stamp | None) -> bool:
    return known is None or list(stamp) >= list(known)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _json_default(value: Any) -> Any:
    """Provider extras are JSON already; anything else is kept as text rather than failing the event."""
    return value.isoformat() if isinstance(value, datetime) else str(value)
