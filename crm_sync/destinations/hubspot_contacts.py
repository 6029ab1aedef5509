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

from crm_sync.destinations.base import ContactSnapshot, DeliveryError, PermanentError, TransientError
from crm_sync.destinations.batch_writes import write_isolating_invalid
from crm_sync.destinations.http import VendorApi, json_or_none
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
        """{contact id: {"id", "properties"}} of the records holding our ids; a contact without one is absent."""
        records: dict[int, dict[str, Any]] = {}
        for start in range(0, len(contacts), BATCH_READ_LIMIT):
            chunk = contacts[start:start + BATCH_READ_LIMIT]
            body = self.api.json("POST", f"{CONTACTS}/batch/read", json={
                "idProperty": self.id_property, "inputs": [{"id": str(c.contact_id)} for c in chunk],
                "properties": [*READ_PROPERTIES, self.id_property]}) or {}
            # HubSpot answers 207 with an OBJECT_NOT_FOUND error naming the ids it has no record for. Any other
            # error leaves a record unread, and taking it for a new one would send everything over the rep's values.
            unread = [e for e in body.get("errors") or [] if e.get("category") != _NOT_FOUND]
            if unread:
                raise TransientError("crm_unavailable", f"hubspot: contact read failed: {unread[0].get('message')}")
            for result in body.get("results") or []:
                properties = result.get("properties") or {}
                ours = str(properties.get(self.id_property) or "")
                if ours.isdigit():
                    records[int(ours)] = {"id": str(result["id"]), "properties": properties}
        return records

    def _batch(self, writes: list[PlannedWrite]) -> dict[int, str | DeliveryError]:
        response = self.api.request("POST", f"{CONTACTS}/batch/upsert", accept=(409,),
                                    json={"inputs": [self._input(write) for write in writes]})
        if response.status_code == 409:
            # The 409 names the existing record but not which input collided: resolve each contact on its own.
            return {write.contact.contact_id: self._single(write) for write in writes}
        ids = self._ids_by_contact(response.json())
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
        body = self.api.json("POST", f"{CONTACTS}/search", json={
            "filterGroups": groups[:5], "properties": ["email", "phone"], "limit": 1, "after": 0})
        results = (body or {}).get("results") or []
        return str(results[0]["id"]) if results else None

    def by_our_id(self, contact: ContactSnapshot) -> str | None:
        """A consistent read by the unique property (not search, which lags behind a fresh write)."""
        response = self.api.request("GET", f"{CONTACTS}/{contact.contact_id}", accept=(404,),
                                    params={"idProperty": self.id_property, "properties": self.id_property})
        return str(response.json()["id"]) if response.status_code == 200 else None

    def _single(self, write: PlannedWrite) -> str | DeliveryError:
        contact_id = write.contact.contact_id
        try:
            response = self.api.request("POST", f"{CONTACTS}/batch/upsert", accept=(409,),
                                        json={"inputs": [self._input(write)]})
            if response.status_code == 409:
                return self._adopt_existing(write, json_or_none(response) or {})
            record = self._ids_by_contact(response.json()).get(contact_id)
            if record is None:
                raise TransientError("crm_unavailable", f"hubspot: upsert of contact {contact_id} "
                                     "answered without its record")
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
            record = self.api.json("GET", f"{CONTACTS}/{existing}",
                                   params={"properties": ",".join(READ_PROPERTIES)}) or {}
            properties = missing_properties(write.contact, record.get("properties") or {})
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
        ids: dict[int, str] = {}
        for result in body.get("results", []):
            ours = (result.get("properties") or {}).get(self.id_property) or result.get("objectWriteTraceId")
            if ours is not None and str(ours).isdigit():
                ids[int(ours)] = str(result["id"])
        return ids
