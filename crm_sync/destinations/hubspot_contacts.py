"""HubSpot contacts: batch upsert keyed by our contact id, and the 409 "Contact already exists" fallback."""
from __future__ import annotations

import re
from typing import Any

from crm_sync.destinations.base import ContactSnapshot, DeliveryError, PermanentError, TransientError
from crm_sync.destinations.batch_writes import write_isolating_invalid
from crm_sync.destinations.content import first_and_last
from crm_sync.destinations.http import VendorApi, json_or_none

CONTACTS = "/crm/v3/objects/contacts"


def existing_id(message: str) -> str | None:
    """The record id HubSpot names in "Contact already exists. Existing ID: 37765128953"."""
    match = re.search(r"Existing ID:\s*(\d+)", message)
    return match.group(1) if match else None


class ContactWriter:
    def __init__(self, api: VendorApi, id_property: str):
        self.api, self.id_property = api, id_property

    def upsert(self, contacts: list[ContactSnapshot]) -> dict[int, str | DeliveryError]:
        """HubSpot record id (or the error) per contact id, in one call when nothing conflicts."""
        unique = list({contact.contact_id: contact for contact in contacts}.values())
        if len(unique) == 1:
            return {contact.contact_id: self._single(contact) for contact in unique}
        return write_isolating_invalid(unique, lambda contact: contact.contact_id, self._batch, self._single)

    def _batch(self, contacts: list[ContactSnapshot]) -> dict[int, str | DeliveryError]:
        response = self.api.request("POST", f"{CONTACTS}/batch/upsert", accept=(409,),
                                    json={"inputs": [self._input(c) for c in contacts]})
        if response.status_code == 409:
            # The 409 names the existing record but not which input collided: resolve each contact on its own.
            return {contact.contact_id: self._single(contact) for contact in contacts}
        ids = self._ids_by_contact(response.json())
        return {contact.contact_id: ids.get(contact.contact_id) or self._single(contact) for contact in contacts}

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

    def _single(self, contact: ContactSnapshot) -> str | DeliveryError:
        try:
            response = self.api.request("POST", f"{CONTACTS}/batch/upsert", accept=(409,),
                                        json={"inputs": [self._input(contact)]})
            if response.status_code == 409:
                return self._adopt_existing(contact, json_or_none(response) or {})
            record = self._ids_by_contact(response.json()).get(contact.contact_id)
            if record is None:
                raise TransientError("crm_unavailable", f"hubspot: upsert of contact {contact.contact_id} "
                                     "answered without its record")
            return record
        except DeliveryError as exc:
            return exc

    def _adopt_existing(self, contact: ContactSnapshot, conflict: dict[str, Any]) -> str:
        """409: the email belongs to another HubSpot contact. Link that record, or keep ours without the email."""
        message = str(conflict.get("message") or "")
        existing = existing_id(message)
        if existing is None:
            raise PermanentError("validation", f"hubspot: upsert conflict without an existing id: {message}",
                                 status=409)
        properties = self._properties(contact)
        ours = self.by_our_id(contact)
        if ours is None or ours == existing:
            properties[self.id_property] = str(contact.contact_id)
            self.api.request("PATCH", f"{CONTACTS}/{existing}", json={"properties": properties})
            return existing
        # Our record exists and the person's email now lives on another record: two HubSpot contacts cannot share
        # an email, so ours keeps its old one and HubSpot's owner decides whether to merge the two.
        properties.pop("email", None)
        self.api.request("PATCH", f"{CONTACTS}/{ours}", json={"properties": properties})
        return ours

    def _input(self, contact: ContactSnapshot) -> dict[str, Any]:
        return {"idProperty": self.id_property, "id": str(contact.contact_id),
                "properties": self._properties(contact), "objectWriteTraceId": str(contact.contact_id)}

    def _ids_by_contact(self, body: dict[str, Any]) -> dict[int, str]:
        ids: dict[int, str] = {}
        for result in body.get("results", []):
            ours = (result.get("properties") or {}).get(self.id_property) or result.get("objectWriteTraceId")
            if ours is not None and str(ours).isdigit():
                ids[int(ours)] = str(result["id"])
        return ids

    @staticmethod
    def _properties(contact: ContactSnapshot) -> dict[str, str]:
        first, last = first_and_last(contact)
        values = {"email": next(iter(contact.emails), None), "phone": next(iter(contact.phones), None),
                  "firstname": first, "lastname": last, "company": contact.company}
        return {name: value for name, value in values.items() if value}
