"""HubSpot: contacts upserted by our own contact id, conversations as notes on the contact.

Idempotency:
- Contacts are keyed by a unique custom contact property holding our contact id (`contact_id_property`, created once
  by the HubSpot admin with "unique values" on). A batch first reads its records by that property (`batch/read`, a
  consistent read, not search), then writes through `batch/upsert` by the same property only what each record leaves
  empty (everything for a new record; nothing, and no call, when no record lacks anything): salespeople's values are
  never overwritten. A retry after a lost response, or search lag, cannot create a second contact, and a first attempt
  pays for no search. When the person already exists in HubSpot under another record with the same email, HubSpot
  answers 409 "Contact already exists. Existing ID: N": we adopt record N (read it, then write onto it our id and only
  what it lacks) and use it.
- Notes have no upsert. Each note's body ends with the marker `crm-ingest:<key>`; a retry (attempt > 1) lists the
  contact's notes through the associations API, which, unlike search, sees a note created a moment ago, and creates
  the note only if none carries the marker.
Batching: `deliver_batch` reads up to `batch_size` contacts in one batch read, writes them in one upsert and their
notes in one batch create; when HubSpot refuses a batch as invalid, its items are written one by one, so that only
the invalid one fails.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx
from pydantic import Field, SecretStr

from crm_sync.destinations.base import (
    ContactSnapshot,
    DeliveryError,
    DeliveryRequest,
    DeliveryResult,
    DestinationSettings,
    PermanentError,
    TransientError,
    crm_id,
)
from crm_sync.destinations.batch_writes import write_isolating_invalid
from crm_sync.destinations.content import has_marker, note_html
from crm_sync.destinations.hubspot_contacts import ContactWriter
from crm_sync.destinations.http import VendorApi, VendorDestination, answer_error, answer_member, json_or_none, \
    retry_after_seconds, share_calls

NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type: note → contact
_POLICY_BACKOFF = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0, "DAILY": 3600.0}
MIGRATION_IN_PROGRESS = 477
_MIGRATION_PAUSE = 600.0   # when a 477 comes without its Retry-After: look again in 10 minutes


class HubSpotSettings(DestinationSettings):
    token: SecretStr = Field(description="a HubSpot private app's access token (crm.objects.contacts scopes)")
    base_url: str = "https://api.hubapi.com"
    # A contact property with unique values that holds our contact id: the key of every contact upsert.
    contact_id_property: str = Field(default="crm_ingest_contact_id", pattern=r"^[a-z][a-z0-9_]*$")
    portal_id: int | None = None          # record links: https://app.hubspot.com/contacts/<portal_id>/record/0-1/<id>
    app_url: str = "https://app.hubspot.com"
    batch_size: int = Field(default=100, ge=1, le=100)


class HubSpotDestination(VendorDestination):
    kind = "hubspot"
    settings_model = HubSpotSettings
    settings: HubSpotSettings

    def __init__(self, settings: HubSpotSettings, http: httpx.Client):
        super().__init__(settings, http)
        headers = {"authorization": f"Bearer {settings.token.get_secret_value()}"}
        self.api = VendorApi(http, "hubspot", settings.base_url, headers, classify=classify,
                             secrets=[settings.token.get_secret_value()])
        self.contacts = ContactWriter(self.api, settings.contact_id_property)

    def find(self, contact: ContactSnapshot) -> str | None:
        return self.contacts.find(contact)

    def upsert_contact(self, request: DeliveryRequest) -> str:
        return _raise_or_return(self.contacts.upsert([request.contact])[request.contact.contact_id])

    def record_interaction(self, request: DeliveryRequest, contact_record_id: str) -> str | None:
        return _raise_or_return(self._record_notes([(request, contact_record_id)])[request.idempotency_key])

    def record_url(self, contact_record_id: str) -> str | None:
        if self.settings.portal_id is None:
            return None
        return f"{self.settings.app_url.rstrip('/')}/contacts/{self.settings.portal_id}/record/0-1/{contact_record_id}"

    def deliver_batch(self, requests: list[DeliveryRequest]) -> list[DeliveryResult | DeliveryError]:
        out: list[DeliveryResult | DeliveryError] = []
        for start in range(0, len(requests), self.settings.batch_size):
            chunk = requests[start:start + self.settings.batch_size]
            before = self.api.calls
            out += share_calls(self._deliver_chunk(chunk), self.api.calls - before)
        return out

    def _deliver_chunk(self, requests: list[DeliveryRequest]) -> list[DeliveryResult | DeliveryError]:
        try:
            contacts = self.contacts.upsert([r.contact for r in requests])
        except DeliveryError as exc:
            return [exc for _ in requests]
        pending = [(r, contacts[r.contact.contact_id]) for r in requests if r.interaction]
        writable = [(r, record) for r, record in pending if isinstance(record, str)]
        try:
            notes = self._record_notes(writable)
        except DeliveryError as exc:
            notes = {r.idempotency_key: exc for r, _ in writable}
        results: list[DeliveryResult | DeliveryError] = []
        for request in requests:
            record = contacts[request.contact.contact_id]
            note = notes.get(request.idempotency_key) if request.interaction else None
            failure = next((x for x in (record, note) if isinstance(x, DeliveryError)), None)
            results.append(failure or DeliveryResult(record, note, self.record_url(record)))
        return results

    # --- notes ------------------------------------------------------------------------------------------------------

    def _record_notes(self, items: list[tuple[DeliveryRequest, str]]) -> dict[str, str | DeliveryError]:
        """Note id (or the error) per idempotency key; an earlier attempt's note is found, not written again."""
        unique = {request.idempotency_key: (request, contact) for request, contact in items}
        done: dict[str, str | DeliveryError] = {}
        for key, (request, contact) in unique.items():
            if request.attempt > 1:
                try:
                    found = self._find_note(contact, key)
                except DeliveryError as exc:
                    if exc.asks_to_wait:
                        raise   # every later call would be refused as well
                    done[key] = exc   # only this delivery's look-up failed: the others go on
                    continue
                if found:
                    done[key] = found
        to_create = [(key, request, contact) for key, (request, contact) in unique.items() if key not in done]
        if to_create:
            done.update(write_isolating_invalid(to_create, lambda item: item[0], self._create_notes,
                                                lambda item: self._create_notes([item])[item[0]]))
        return done

    def _create_notes(self, items: list[tuple[str, DeliveryRequest, str]]) -> dict[str, str | DeliveryError]:
        inputs = [{
            "properties": {"hs_timestamp": _timestamp(request), "hs_note_body": note_html(
                request.interaction, request.contact, key, max_chars=65_000)},
            "associations": [{"to": {"id": contact}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}]}],
            "objectWriteTraceId": key,
        } for key, request, contact in items]
        what = "hubspot POST /crm/v3/objects/notes/batch/create"
        body = self.api.json("POST", "/crm/v3/objects/notes/batch/create", json={"inputs": inputs})
        created: dict[str, str | DeliveryError] = {}
        claimed: dict[str, list[str]] = {}   # note id → the keys the answer gave it to
        ours = [key for key, _, _ in items]
        for result in answer_member(body, "results", list, what, written=True):
            result = result if isinstance(result, dict) else {}
            properties = result.get("properties")
            text = properties.get("hs_note_body") if isinstance(properties, dict) else None
            trace = result.get("objectWriteTraceId")
            key = trace if isinstance(trace, str) and trace in ours else next(
                (k for k in ours if has_marker(text, k)), None)
            if key is None or (text is not None and not has_marker(text, key)):
                continue   # not one of ours, or a trace id that names another note than the body's marker
            note = crm_id(result.get("id"))
            created[key] = note or answer_error(what, f"answered without an id for note {key}", written=True)
            if note:
                claimed.setdefault(note, []).append(key)
        for note, keys in claimed.items():
            if len(keys) > 1:   # one note id given to several notes: none of them is confirmed
                created.update({key: answer_error(what, f"answered note id {note} for {len(keys)} notes",
                                                  written=True) for key in keys})
        said = _error_messages(body)
        for key, _, _ in items:
            # A 207 partial failure: the next attempt looks for the note before writing it. HubSpot's errors do not
            # say which input they are about, but whoever reads the dead letter needs what they say.
            created.setdefault(key, TransientError("crm_unavailable", f"hubspot: note {key} was not confirmed{said}"))
        return created

    def _find_note(self, contact: str, key: str) -> str | None:
        note_ids = self._associated_note_ids(contact)
        what = "hubspot POST /crm/v3/objects/notes/batch/read"
        for start in range(0, len(note_ids), 100):
            chunk = note_ids[start:start + 100]
            body = self.api.json("POST", "/crm/v3/objects/notes/batch/read", written=False, json={
                "inputs": [{"id": note_id} for note_id in chunk], "properties": ["hs_note_body"]})
            for note in answer_member(body, "results", list, what, written=False):
                properties = note.get("properties") if isinstance(note, dict) else None
                if isinstance(properties, dict) and has_marker(properties.get("hs_note_body"), key):
                    found = crm_id(note.get("id"))
                    if found is None:
                        raise answer_error(what, f"answered note {key} without its id", written=False)
                    return found
        return None

    def _associated_note_ids(self, contact: str) -> list[str]:
        ids: list[str] = []
        after: str | None = None
        path = f"/crm/v4/objects/contacts/{contact}/associations/notes"
        what = f"hubspot GET {path}"
        while True:
            params = {"limit": 500, **({"after": after} if after else {})}
            body = self.api.json("GET", path, params=params)
            for item in answer_member(body, "results", list, what, written=False):
                note = crm_id(item.get("toObjectId")) if isinstance(item, dict) else None
                if note is None:
                    raise answer_error(what, f"answered an association without a note id: {str(item)[:100]}",
                                       written=False)
                ids.append(note)
            paging = body.get("paging")
            after = paging.get("next", {}).get("after") if isinstance(paging, dict) and isinstance(
                paging.get("next"), dict) else None
            if not after:
                # newest first: a retry's note is a recent one
                return sorted(ids, key=lambda i: (i.isdigit(), len(i), i), reverse=True)


def classify(response: httpx.Response, what: str) -> DeliveryError | None:
    body = json_or_none(response)
    body = body if isinstance(body, dict) else {}
    message = str(body.get("message") or "")
    if response.status_code == 429:
        policy = str(body.get("policyName") or ("SECONDLY" if "secondly" in message.lower() else ""))
        wait = retry_after_seconds(response) or _POLICY_BACKOFF.get(policy, 10.0)
        return TransientError("rate_limit", f"{what}: HTTP 429 {policy}: {message}", wait, 429)
    if response.status_code == MIGRATION_IN_PROGRESS:
        # The account is moving between HubSpot's data-hosting locations (hours, up to about a day): every call
        # fails until it is done, so the whole destination waits, by the Retry-After HubSpot sends with it.
        return TransientError("crm_migrating", f"{what}: HTTP 477 Migration in Progress: {message}",
                              retry_after_seconds(response) or _MIGRATION_PAUSE, MIGRATION_IN_PROGRESS)
    if response.status_code == 400 and "already has that value" in message:
        # A unique value written concurrently by a parallel run: the next attempt finds the record that holds it.
        return TransientError("conflict", f"{what}: {message}", status=400)
    if response.status_code == 400 and "non-unique" in message:
        return PermanentError("validation", f"{what}: {message} (create the contact property as 'unique values')",
                              status=400)
    return None


def _timestamp(request: DeliveryRequest) -> str:
    when = request.interaction.occurred_at if request.interaction else None
    when = when or datetime.now(timezone.utc)
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _raise_or_return(value: Any) -> Any:
    if isinstance(value, DeliveryError):
        raise value
    return value


def _error_messages(body: dict[str, Any]) -> str:
    """`; HubSpot said: <category>: <message>` for the first errors of a 207 answer ("" without any)."""
    errors = body.get("errors")
    said = [f"{e.get('category')}: {str(e.get('message'))[:200]}" for e in (errors if isinstance(errors, list) else [])
            if isinstance(e, dict)][:2]
    return f"; HubSpot said: {' | '.join(said)}" if said else ""
