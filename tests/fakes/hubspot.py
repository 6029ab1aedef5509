"""Fake HubSpot CRM v3/v4: contacts (batch read and upsert, read by unique property, patch, search) and notes.

Shapes follow developers.hubspot.com (batch/upsert results with `new`; 409 "Contact already exists. Existing ID: N"
with category CONFLICT; 429 with `policyName`; errors `{status, message, correlationId, category}`). Search is the
only eventually consistent read: it ignores records younger than `faults.search_lag_ms`, as HubSpot's index does.
A batch read (by record id, or by `idProperty` = email or a unique property) answers 200 when it found every input and
207 Multi-Status when it did not, with the found records in `results` and one OBJECT_NOT_FOUND error naming the
missing ids (as HubSpot/hubspot-api-php#619 reports for a custom idProperty). A contact write is refused (400) when it
sets a property the account does not have (PROPERTY_DOESNT_EXIST) or a read-only one such as `hs_additional_emails`
(READ_ONLY_VALUE); the known writable ones are the standard `email`, `phone`, `mobilephone`, `firstname`, `lastname`,
`company` and `custom_properties`.
A batch with one input HubSpot refuses fails as a whole (400 VALIDATION_ERROR): notes whose body holds one of
`rejected_note_texts` are refused so. While an account migrates between data-hosting locations every call is
answered 477 Migration in Progress with a Retry-After: `migration_in_progress()`.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

from tests.fakes.base import FakeCRM, FakeRequest, FakeResponse
from tests.fakes.faults import Fault

TOKEN = "hubspot-test-token-0123456789"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STANDARD_CONTACT_PROPERTIES = frozenset({"email", "phone", "mobilephone", "firstname", "lastname", "company"})
READ_ONLY_CONTACT_PROPERTIES = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_additional_emails"})


def _iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error(status: int, message: str, category: str, **extra: Any) -> FakeResponse:
    return FakeResponse(status, {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                                 "category": category, **extra})


def migration_in_progress(retry_after: int = 3600, match: str | None = None) -> Fault:
    return Fault.respond(477, {"status": "error", "message": "Migration in progress", "correlationId": str(
        uuid.uuid4())}, match, headers={"Retry-After": str(retry_after)})


class HubSpotFake(FakeCRM):
    vendor = "hubspot"

    def __init__(self) -> None:
        super().__init__()
        self.custom_properties = {"crm_ingest_contact_id"}
        self.unique_properties = {"crm_ingest_contact_id"}   # custom properties with "unique values" on
        self.rejected_note_texts: set[str] = set()
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        contacts, notes = "/crm/v3/objects/contacts", "/crm/v3/objects/notes"
        self.route("POST", f"{contacts}/batch/upsert", self._upsert)
        self.route("POST", f"{contacts}/batch/read", self._read_contacts)
        self.route("POST", f"{contacts}/search", self._search)
        self.route("GET", f"{contacts}/(?P<id>[^/]+)", self._get_contact)
        self.route("PATCH", f"{contacts}/(?P<id>[^/]+)", self._patch_contact)
        self.route("POST", f"{notes}/batch/create", self._create_notes)
        self.route("POST", f"{notes}/batch/read", self._read_notes)
        self.route("GET", "/crm/v4/objects/contacts/(?P<id>[^/]+)/associations/notes", self._note_associations)

    # --- what tests look at ---------------------------------------------------------------------------------------

    def records_for(self, contact_id: int) -> list[dict[str, Any]]:
        return [c for c in self.contacts.values() if c["properties"].get("crm_ingest_contact_id") == str(contact_id)]

    def records_with_email(self, email: str) -> list[dict[str, Any]]:
        return [c for c in self.contacts.values() if (c["properties"].get("email") or "").lower() == email.lower()]

    def notes_of(self, record_id: str) -> list[dict[str, Any]]:
        return [n for n in self.notes.values() if record_id in n["contacts"]]

    def seed_contact(self, **properties: str) -> str:
        """A contact someone created in HubSpot long ago (already searchable)."""
        with self.lock:
            return self._create_contact(properties, created=float("-inf"))

    # --- vendor hooks ---------------------------------------------------------------------------------------------

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        if request.header("authorization") == f"Bearer {TOKEN}":
            return None
        return error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                     "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                     "INVALID_AUTHENTICATION")

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        response = error(429, "You have reached your ten_secondly_rolling limit.", "RATE_LIMITS",
                         errorType="RATE_LIMIT", policyName="TEN_SECONDLY_ROLLING", groupName="publicapi")
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    def server_error(self) -> FakeResponse:
        return error(502, "Bad Gateway", "INTERNAL_ERROR")

    # --- contacts -------------------------------------------------------------------------------------------------

    def _create_contact(self, properties: dict[str, str], created: float | None = None) -> str:
        record_id = str(self.new_id())
        stamp = _iso()
        self.contacts[record_id] = {
            "id": record_id, "created": self.now() if created is None else created, "createdAt": stamp,
            "updatedAt": stamp, "properties": {**properties, "hs_object_id": record_id, "createdate": stamp},
        }
        return record_id

    def _object(self, record: dict[str, Any], properties: list[str] | None = None) -> dict[str, Any]:
        props = record["properties"]
        shown = props if properties is None else {k: props.get(k) for k in [*properties, "hs_object_id"]}
        return {"id": record["id"], "properties": dict(shown), "createdAt": record["createdAt"],
                "updatedAt": record["updatedAt"], "archived": False}

    def _by_property(self, name: str, value: str) -> dict[str, Any] | None:
        for record in self.contacts.values():
            stored = record["properties"].get(name)
            if stored is not None and (stored.lower() == value.lower() if name == "email" else stored == value):
                return record
        return None

    def _problem(self, properties: dict[str, str], record_id: str | None) -> FakeResponse | None:
        """Validation and uniqueness, checked before anything is written."""
        for name in properties:
            if name in READ_ONLY_CONTACT_PROPERTIES:
                return _invalid_property(name, f'\\"{name}\\" is a read only property; its value cannot be set.',
                                         "READ_ONLY_VALUE")
            if name not in STANDARD_CONTACT_PROPERTIES | self.custom_properties:
                return _invalid_property(name, f'Property \\"{name}\\" does not exist', "PROPERTY_DOESNT_EXIST")
        email = properties.get("email")
        if email is not None and not _EMAIL.match(email):
            return error(400, f'Property values were not valid: [{{"isValid":false,"message":"Email address {email} '
                         'is invalid","error":"INVALID_EMAIL","name":"email"}]', "VALIDATION_ERROR")
        if email:
            owner = self._by_property("email", email)
            if owner and owner["id"] != record_id:
                return error(409, f"Contact already exists. Existing ID: {owner['id']}", "CONFLICT")
        for name in self.unique_properties & properties.keys():
            owner = self._by_property(name, properties[name])
            if owner and owner["id"] != record_id:
                return error(400, f'Property values were not valid: [{{"isValid":false,"message":"{properties[name]} '
                             f'already has that value.","error":"INVALID_UNIQUE_VALUE","name":"{name}"}}]',
                             "VALIDATION_ERROR")
        return None

    def _upsert(self, request: FakeRequest) -> FakeResponse:
        inputs = (request.json() or {}).get("inputs") or []
        ids = [item.get("id") for item in inputs]
        if not inputs or len(set(ids)) != len(ids):
            return error(400, f"Duplicate IDs found in batch input: {ids}", "VALIDATION_ERROR")
        plan, claimed = [], set()
        for item in inputs:
            id_property = item.get("idProperty")
            if id_property not in self.unique_properties | {"email"}:
                return error(400, f"Unable to perform update/upsert by non-unique 0-1 property {id_property}",
                             "VALIDATION_ERROR")
            existing = self._by_property(id_property, item["id"])
            properties = {**item.get("properties", {}), id_property: item["id"]}
            problem = self._problem(properties, existing["id"] if existing else None)
            email = (properties.get("email") or "").lower()
            if problem is None and email and email in claimed:
                problem = error(409, "Contact already exists. Existing ID: (in this batch)", "CONFLICT")
            if problem is not None:
                return problem
            claimed.add(email)
            plan.append((item, existing, properties))
        results = []
        for item, existing, properties in plan:
            if existing is None:
                record = self.contacts[self._create_contact(properties)]
            else:
                record = existing
                record["properties"].update(properties)
                record["updatedAt"] = _iso()
            results.append({**self._object(record), "new": existing is None,
                            "objectWriteTraceId": item.get("objectWriteTraceId")})
        results.reverse()   # HubSpot does not promise input order; neither do we
        return FakeResponse(200, {"status": "COMPLETE", "results": results, "startedAt": _iso(),
                                  "completedAt": _iso()})

    def _read_contacts(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        id_property = body.get("idProperty")
        if id_property and id_property not in self.unique_properties | {"email"}:
            # Modelled on the upsert's documented refusal; the read's own wording was not found.
            return error(400, f"Unable to perform read by non-unique 0-1 property {id_property}", "VALIDATION_ERROR")
        ids = [str(item.get("id")) for item in body.get("inputs") or []]
        records = {i: self._by_property(id_property, i) if id_property else self.contacts.get(i) for i in ids}
        found = [self._object(record, body.get("properties")) for record in records.values() if record is not None]
        return _batch_read_answer(found, [i for i, record in records.items() if record is None], "CONTACT")

    def _get_contact(self, request: FakeRequest) -> FakeResponse:
        id_property = request.arg("idProperty")
        record = self._by_property(id_property, request.params["id"]) if id_property else \
            self.contacts.get(request.params["id"])
        if record is None:
            return error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                         context={"id": [request.params["id"]]})
        wanted = request.arg("properties")
        return FakeResponse(200, self._object(record, wanted.split(",") if wanted else None))

    def _patch_contact(self, request: FakeRequest) -> FakeResponse:
        record = self.contacts.get(request.params["id"])
        if record is None:
            return error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        properties = (request.json() or {}).get("properties") or {}
        problem = self._problem(properties, record["id"])
        if problem is not None:
            return problem
        record["properties"].update(properties)
        record["updatedAt"] = _iso()
        return FakeResponse(200, self._object(record))

    def _search(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        groups = body.get("filterGroups") or []
        found = [record for record in self.contacts.values() if self.searchable(record["created"])
                 and any(all(self._passes(record, f) for f in g.get("filters", [])) for g in groups)]
        limit = int(body.get("limit") or 10)
        return FakeResponse(200, {"total": len(found),
                                  "results": [self._object(r, body.get("properties")) for r in found[:limit]]})

    @staticmethod
    def _passes(record: dict[str, Any], condition: dict[str, Any]) -> bool:
        if condition.get("operator") != "EQ":
            raise ValueError(f"the fake only implements EQ, not {condition.get('operator')}")
        stored = record["properties"].get(condition["propertyName"])
        return stored is not None and str(stored).lower() == str(condition["value"]).lower()

    # --- notes ----------------------------------------------------------------------------------------------------

    def _create_notes(self, request: FakeRequest) -> FakeResponse:
        inputs = (request.json() or {}).get("inputs") or []
        for item in inputs:
            if not item.get("properties", {}).get("hs_timestamp"):
                return error(400, "Property values were not valid: hs_timestamp is required", "VALIDATION_ERROR")
            body = item.get("properties", {}).get("hs_note_body") or ""
            if any(text in body for text in self.rejected_note_texts):
                return error(400, 'Property values were not valid: [{"isValid":false,"message":"hs_note_body is '
                             'not valid","error":"INVALID_PROPERTY_VALUE","name":"hs_note_body"}]', "VALIDATION_ERROR")
            for association in item.get("associations", []):
                if association["to"]["id"] not in self.contacts:
                    return error(400, f"Object {association['to']['id']} does not exist", "VALIDATION_ERROR")
        results = []
        for item in inputs:
            note_id, stamp = str(self.new_id()), _iso()
            self.notes[note_id] = {"id": note_id, "createdAt": stamp, "updatedAt": stamp, "created": self.now(),
                                   "properties": {**item["properties"], "hs_object_id": note_id},
                                   "contacts": [a["to"]["id"] for a in item.get("associations", [])]}
            results.append({**self._object(self.notes[note_id]), "objectWriteTraceId": item.get("objectWriteTraceId")})
        return FakeResponse(201, {"status": "COMPLETE", "results": results, "startedAt": _iso(), "completedAt": _iso()})

    def _read_notes(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        ids = [item["id"] for item in body.get("inputs", [])]
        found = [self._object(self.notes[i], body.get("properties")) for i in ids if i in self.notes]
        return _batch_read_answer(found, [i for i in ids if i not in self.notes], "NOTE")

    def _note_associations(self, request: FakeRequest) -> FakeResponse:
        notes = [n for n in self.notes.values() if request.params["id"] in n["contacts"]]
        start, limit = int(request.arg("after", "0")), int(request.arg("limit", "500"))
        page = notes[start:start + limit]
        payload: dict[str, Any] = {"results": [{"toObjectId": int(n["id"]), "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 202, "label": None}]} for n in page]}
        if start + limit < len(notes):
            payload["paging"] = {"next": {"after": str(start + limit)}}
        return FakeResponse(200, payload)


def _invalid_property(name: str, message: str, code: str) -> FakeResponse:
    return error(400, f'Property values were not valid: [{{"isValid":false,"message":"{message}","error":"{code}",'
                 f'"name":"{name}"}}]', "VALIDATION_ERROR")


def _batch_read_answer(found: list[dict[str, Any]], missing: list[str], object_name: str) -> FakeResponse:
    """200 with every record, or 207 with the records found and one error naming the ids that were not."""
    payload: dict[str, Any] = {"status": "COMPLETE", "results": found, "startedAt": _iso(), "completedAt": _iso()}
    if missing:
        message = f"Could not get some {object_name} objects, they may be deleted or not exist."
        payload.update(numErrors=1, errors=[{"status": "error", "category": "OBJECT_NOT_FOUND",
                                             "context": {"ids": missing}, "message": message}])
    return FakeResponse(207 if missing else 200, payload)
