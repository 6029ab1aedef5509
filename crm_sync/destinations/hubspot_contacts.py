"""HubSpot contacts: read by our contact id, then write only what the record lacks; the 409 fallback.

Each batch starts with one `batch/read` by our unique id property, a consistent read (unlike search) that also finds
what an earlier attempt wrote. A person HubSpot has no record for is created with everything we know; an existing
record gets only the properties it leaves empty (see hubspot_missing_properties), and none at all when it lacks
nothing. The writes of a batch go in one `batch/upsert` keyed by our id property.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from crm_sync.destinations.base import ContactSnapshot, DeliveryError, PermanentError, TransientError, crm_id
from crm_sync.destinations.batch_writes import write_isolating_invalid
from crm_sync.destinations.http import VendorApi, answer_error, answer_member, json_or_none
from crm_sync.destinations.hubspot_missing_properties import READ_PROPERTIES, missing_properties

CONTACTS = "/crm/v3/objects/contacts"
BATCH_READ_LIMIT = 100   # inputs HubSpot accepts in one batch/read
_NOT_FOUND = "OBJECT_NOT_FOUND"


def existing_id(message: str) -> str | None:
    """The record id HubSpot names in "Contact already exists. Existing ID: 37765128953"."""
    match = re.search(r"Existing ID:\s*(\d+)", message)
    return match.group(1) if match else None


@dataclass(frozen=True)
class PlannedWrite:
    contact: ContactSnapshot
    record_id: str | None         # the record holding our id, None when HubSpot has none yet
    properties: dict[str, str]    # what that record lacks (everything for a new record)


class ContactWriter:
    def __init__(self, api: VendorApi, id_property: str):
        self.api, self.id_property = api, id_property

    def upsert(self, contacts: list[ContactSnapshot]) -> dict[int, str | DeliveryError]:
        """HubSpot record id (or the error) per contact id: one read, then at most one write when nothing conflicts."""
        unique = list({contact.contact_id: contact for contact in contacts}.values())
        records = self.read_by_our_id(unique)
        done: dict[int, str | DeliveryError] = {}
        writes: list[PlannedWrite] = []
        for contact in unique:
            record = records.get(contact.contact_id)
            properties = missing_properties(contact, record["properties"] if record else {})
            if record is not None and not properties:
                done[contact.contact_id] = record["id"]   # the record lacks nothing of ours: no write at all
            else:
                writes.append(PlannedWrite(contact, record["id"] if record else None, properties))
        if len(writes) == 1:
            done[writes[0].contact.contact_id] = self._single(writes[0])
        elif writes:
            done.update(write_isolating_invalid(writes, lambda write: write.contact.contact_id, self._batch,
                                                self._single))
        return done

    def read_by_our_id(self, contacts: list[ContactSnapshot]) -> dict[int, dict[str, Any]]:
        """{contact id: {"id", "properties"}} of the records holding our ids; a contact without one is absent.

        Absent means HubSpot said so: the read must account for every input, as a record or as an id named by its
        OBJECT_NOT_FOUND error. Any other answer leaves a record unread, and taking it for a new one would send
        everything over the rep's values."""
        what = f"hubspot POST {CONTACTS}/batch/read"
        records: dict[int, dict[str, Any]] = {}
        for start in range(0, len(contacts), BATCH_READ_LIMIT):
            chunk = contacts[start:start + BATCH_READ_LIMIT]
            body = self.api.json("POST", f"{CONTACTS}/batch/read", written=False, json={
                "idProperty": self.id_property, "inputs": [{"id": str(c.contact_id)} for c in chunk],
                "properties": [*READ_PROPERTIES, self.id_property]})
            errors = body.get("errors") or []
            if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
                raise answer_error(what, f"answered errors that are not a list of objects: {str(errors)[:100]}",
                                   written=False)
            unread = [e for e in errors if e.get("category") != _NOT_FOUND]
            if unread:
                raise TransientError("crm_unavailable", f"hubspot: contact read failed: {unread[0].get('message')}")
            absent = {str(i) for e in errors for i in _context_ids(e)}
            for result in answer_member(body, "results", list, what, written=False):
                properties = result.get("properties") if isinstance(result, dict) else None
                ours = str(properties.get(self.id_property) or "") if isinstance(properties, dict) else ""
                if ours.isdigit():   # a record without one of our ids accounts for no input
                    records[int(ours)] = {"id": _record_id(result, what), "properties": properties}
            unaccounted = [c.contact_id for c in chunk if c.contact_id not in records and str(c.contact_id)
                           not in absent]
            if unaccounted:
                raise answer_error(what, f"answered neither the records nor their absence for contacts "
                                   f"{unaccounted[:5]}", written=False)
        return records

    def _batch(self, writes: list[PlannedWrite]) -> dict[int, str | DeliveryError]:
        response = self.api.request("POST", f"{CONTACTS}/batch/upsert", accept=(409,),
                                    json={"inputs": [self._input(write) for write in writes]})
        if response.status_code == 409:
            # The 409 names the existing record but not which input collided: resolve each contact on its own.
            return {write.contact.contact_id: self._single(write) for write in writes}
        ids = self._ids_by_contact(self.api.answer(response, f"hubspot POST {CONTACTS}/batch/upsert"))
        return {write.contact.contact_id: ids.get(write.contact.contact_id) or self._single(write)
                for write in writes}

    def find(self, contact: ContactSnapshot) -> str | None:
        ours = self.by_our_id(contact)
        if ours:
            return ours
        groups = [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}
                  for email in contact.emails[:3]]
        groups += [{"filters": [{"propertyName": "phone", "operator": "EQ", "value": phone}]}
                   for phone in contact.phones[:2]]
        if not groups:
            return None
        what = f"hubspot POST {CONTACTS}/search"
        body = self.api.json("POST", f"{CONTACTS}/search", written=False, json={
            "filterGroups": groups[:5], "properties": ["email", "phone"], "limit": 1, "after": 0})
        results = answer_member(body, "results", list, what, written=False)
        return _record_id(results[0], what) if results else None

    def by_our_id(self, contact: ContactSnapshot) -> str | None:
        """A consistent read by the unique property (not search, which lags behind a fresh write)."""
        path = f"{CONTACTS}/{contact.contact_id}"
        response = self.api.request("GET", path, accept=(404,),
                                    params={"idProperty": self.id_property, "properties": self.id_property})
        if response.status_code != 200:
            return None
        return _record_id(self.api.answer(response, f"hubspot GET {path}"), f"hubspot GET {path}")

    def _single(self, write: PlannedWrite) -> str | DeliveryError:
        contact_id = write.contact.contact_id
        try:
            response = self.api.request("POST", f"{CONTACTS}/batch/upsert", accept=(409,),
                                        json={"inputs": [self._input(write)]})
            if response.status_code == 409:
                conflict = json_or_none(response)
                return self._adopt_existing(write, conflict if isinstance(conflict, dict) else {})
            what = f"hubspot POST {CONTACTS}/batch/upsert"
            record = self._ids_by_contact(self.api.answer(response, what)).get(contact_id)
            if record is None:
                raise answer_error(what, f"answered the upsert of contact {contact_id} without its record id",
                                   written=True)
            return record
        except DeliveryError as exc:
            return exc

    def _adopt_existing(self, write: PlannedWrite, conflict: dict[str, Any]) -> str:
        """409: the email belongs to another HubSpot contact. Link that record, or keep ours without the email."""
        message = str(conflict.get("message") or "")
        existing = existing_id(message)
        if existing is None:
            raise PermanentError("validation", f"hubspot: upsert conflict without an existing id: {message}",
                                 status=409)
        contact_id = write.contact.contact_id
        if write.record_id is None or write.record_id == existing:
            # A salesperson's record: it gets what it lacks and our id (so that the next batch read finds it),
            # never our values over theirs.
            what = f"hubspot GET {CONTACTS}/{existing}"
            record = self.api.json("GET", f"{CONTACTS}/{existing}", params={"properties": ",".join(READ_PROPERTIES)})
            properties = missing_properties(write.contact, answer_member(record, "properties", dict, what,
                                                                         written=False))
            properties[self.id_property] = str(contact_id)
            self.api.request("PATCH", f"{CONTACTS}/{existing}", json={"properties": properties})
            return existing
        # Our record exists without an email, and the person's email lives on another record: two HubSpot contacts
        # cannot share an email, so ours stays without one and HubSpot's owner decides whether to merge the two.
        # What else ours lacks was read at the start of this batch.
        properties = {name: value for name, value in write.properties.items() if name != "email"}
        if properties:
            self.api.request("PATCH", f"{CONTACTS}/{write.record_id}", json={"properties": properties})
        return write.record_id

    def _input(self, write: PlannedWrite) -> dict[str, Any]:
        return {"idProperty": self.id_property, "id": str(write.contact.contact_id),
                "properties": write.properties, "objectWriteTraceId": str(write.contact.contact_id)}

    def _ids_by_contact(self, body: dict[str, Any]) -> dict[int, str]:
        """Record id per contact id in an upsert's answer; a result without a usable id is left out (its contact is
        then upserted again on its own, by our id property: no second record)."""
        ids: dict[int, str] = {}
        results = answer_member(body, "results", list, f"hubspot POST {CONTACTS}/batch/upsert", written=True)
        for result in [r for r in results if isinstance(r, dict)]:
            properties = result.get("properties") if isinstance(result.get("properties"), dict) else {}
            ours = properties.get(self.id_property) or result.get("objectWriteTraceId")
            record = crm_id(result.get("id"))
            if ours is not None and str(ours).isdigit() and record is not None:
                ids[int(ours)] = record
        return ids


def _record_id(record: Any, what: str) -> str:
    """The id of a record HubSpot answered with (a read: a record without one is a glitch to retry)."""
    found = crm_id(record.get("id")) if isinstance(record, dict) else None
    if found is None:
        raise answer_error(what, f"answered a record without its id: {str(record)[:100]}", written=False)
    return found


def _context_ids(error: dict[str, Any]) -> list[Any]:
    """The ids an OBJECT_NOT_FOUND error names (`context.ids`)."""
    context = error.get("context")
    ids = context.get("ids") if isinstance(context, dict) else None
    return ids if isinstance(ids, list) else []
