"""Fake Kommo (amoCRM) API v4: contacts, leads (with `leads/complex`) and lead notes.

Shapes follow developers.kommo.com and amocrm/amocrm-api-php: HAL bodies `{"_links", "_embedded": {"contacts": […]}}`,
`custom_fields_values` (null when empty) with `field_code` PHONE/EMAIL, 204 No Content for an empty list, complex
answers `[{"id", "contact_id", "company_id", "request_id": […], "merged"}]`. `?query=` is the eventually consistent
full-text search (it covers custom field values); `filter[...]` listings are not. The account's contact custom fields
are kommo_fields.py's; the errors (problem+json, the IP 403s) are kommo_errors.py's, and both are importable from here.
"""
from __future__ import annotations

import re
import time
from typing import Any

from tests.fakes.base import FakeCRM, FakeRequest, FakeResponse
from tests.fakes.kommo_errors import invalid, ip_blocked, ip_not_whitelisted, problem
from tests.fakes.kommo_fields import CONTACT_ID_CODE, CONTACT_ID_FIELD_ID, ENUMS, ContactFields

__all__ = ["CONTACT_ID_CODE", "CONTACT_ID_FIELD_ID", "ENUMS", "KEY_FIELD_ID", "TOKEN", "KommoFake", "ip_blocked",
           "ip_not_whitelisted", "problem"]

TOKEN = "kommo-long-lived-test-token"
KEY_FIELD_ID = 771001



class KommoFake(ContactFields, FakeCRM):
    vendor = "kommo"

    def __init__(self) -> None:
        super().__init__()
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, dict[str, Any]] = {}
        self.route("GET", "/api/v4/contacts", lambda r: self._list(r, self.contacts, "contacts"))
        self.route("POST", "/api/v4/contacts", self._create_contacts)
        self.route("PATCH", "/api/v4/contacts", self._patch_contacts)
        self.route("GET", "/api/v4/leads", lambda r: self._list(r, self.leads, "leads"))
        self.route("POST", "/api/v4/leads/complex", self._complex)
        self.route("GET", r"/api/v4/leads/(?P<id>\d+)/notes", self._lead_notes)
        self.route("POST", "/api/v4/leads/notes", self._add_notes)

    # --- what tests look at ---------------------------------------------------------------------------------------

    def contacts_with(self, email: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        def has(entity: dict[str, Any], code: str, value: str) -> bool:
            return any(_norm(code, v) == _norm(code, value) for v in _values(entity, code))
        return [c for c in self.contacts.values()
                if (email and has(c, "EMAIL", email)) or (phone and has(c, "PHONE", phone))]

    def leads_of(self, contact_id: int | str) -> list[dict[str, Any]]:
        return [lead for lead in self.leads.values() if int(contact_id) in lead["contact_ids"]]

    def notes_of(self, lead_id: int | str) -> list[dict[str, Any]]:
        return [n for n in self.notes.values() if n["entity_id"] == int(lead_id)]

    def seed_contact(self, name: str, emails: list[str | dict] = (), phones: list[str | dict] = ()) -> int:
        """A contact a manager created long ago (searchable, outside any recent window). A value is a string (typed
        WORK, as Kommo's form does by default) or a `{"value", "enum_code"}` of another type."""
        def typed(values: list[str | dict]) -> list[dict]:
            return [v if isinstance(v, dict) else {"value": v, "enum_code": "WORK"} for v in values]
        with self.lock:
            contact_id = self._store_contact({"name": name, "custom_fields_values": [
                {"field_code": "EMAIL", "values": typed(emails)},
                {"field_code": "PHONE", "values": typed(phones)}]})
            self.contacts[contact_id].update(created=float("-inf"), created_at=0, updated_at=0)
            return contact_id

    def contact_value(self, contact_id: int | str, code: str = CONTACT_ID_CODE) -> str | None:
        return next(iter(_values(self.contacts[int(contact_id)], code)), None)

    # --- vendor hooks ---------------------------------------------------------------------------------------------

    def authenticate(self, request: FakeRequest) -> FakeResponse | None:
        return None if request.header("authorization") == f"Bearer {TOKEN}" else problem(401, "Unauthorized")

    def rate_limited(self, retry_after: float | None) -> FakeResponse:
        response = problem(429, "Too Many Requests")
        if retry_after is not None:
            response.headers["Retry-After"] = str(int(retry_after))
        return response

    def server_error(self) -> FakeResponse:
        return problem(500, "Internal Server Error")

    # --- storage --------------------------------------------------------------------------------------------------

    def _store_contact(self, body: dict[str, Any]) -> int:
        contact_id, now = self.new_id(), int(time.time())
        self.contacts[contact_id] = {
            "id": contact_id, "name": body.get("name") or "", "first_name": body.get("first_name") or "",
            "last_name": body.get("last_name") or "", "responsible_user_id": body.get("responsible_user_id", 1),
            "group_id": 0, "created_by": 0, "updated_by": 0, "created_at": now, "updated_at": now,
            "closest_task_at": None, "is_deleted": False, "is_unsorted": False, "account_id": 1, "created": self.now(),
            "custom_fields_values": self._contact_fields(body.get("custom_fields_values")),
        }
        return contact_id

    def _shown(self, entity: dict[str, Any], name: str, with_contacts: bool) -> dict[str, Any]:
        shown = {k: v for k, v in entity.items() if k not in ("created", "contact_ids")}
        shown["_links"] = {"self": {"href": f"{self.url}/api/v4/{name}/{entity['id']}"}}
        if name == "leads":
            embedded = {"tags": entity.get("tags", []), "companies": []}
            if with_contacts:
                embedded["contacts"] = [{"id": c, "is_main": i == 0} for i, c in enumerate(entity["contact_ids"])]
            shown["_embedded"] = embedded
        return shown

    def _list(self, request: FakeRequest, table: dict[int, dict[str, Any]], name: str) -> FakeResponse:
        rows = list(table.values())
        ids = request.query.get("filter[id][]")
        if ids:
            rows = [r for r in rows if str(r["id"]) in ids]
        for stamp in ("created_at", "updated_at"):
            floor = request.arg(f"filter[{stamp}][from]")
            if floor:
                rows = [r for r in rows if r[stamp] >= int(floor)]
            if request.arg(f"order[{stamp}]"):
                rows.sort(key=lambda r: (r[stamp], r["id"]), reverse=request.arg(f"order[{stamp}]") == "desc")
        term = request.arg("query")
        if term:
            rows = [r for r in rows if self.searchable(r["created"]) and _found_by(r, term)]
        limit, page = int(request.arg("limit", "50")), int(request.arg("page", "1"))
        rows = rows[(page - 1) * limit:page * limit]
        if not rows:
            return FakeResponse(204)
        with_contacts = "contacts" in (request.arg("with") or "")
        return FakeResponse(200, {"_page": page, "_links": {"self": {"href": f"{self.url}/api/v4/{name}"}},
                                  "_embedded": {name: [self._shown(r, name, with_contacts) for r in rows]}})

    # --- contacts -------------------------------------------------------------------------------------------------

    def _create_contacts(self, request: FakeRequest) -> FakeResponse:
        bodies = request.json() or []
        for index, body in enumerate(bodies):
            problem = self._bad_contact(body.get("custom_fields_values"), str(body.get("request_id", index)))
            if problem is not None:
                return problem
        created = []
        for body in bodies:
            contact_id = self._store_contact(body)
            created.append({"id": contact_id, "request_id": body.get("request_id", str(len(created))),
                            "_links": {"self": {"href": f"{self.url}/api/v4/contacts/{contact_id}"}}})
        return FakeResponse(200, {"_links": {}, "_embedded": {"contacts": created}})

    def _patch_contacts(self, request: FakeRequest) -> FakeResponse:
        changes = request.json() or []
        if any(int(change.get("id") or 0) not in self.contacts for change in changes):
            return invalid("0", "id", "Contact not found")
        for index, change in enumerate(changes):
            problem = self._bad_contact(change.get("custom_fields_values"), str(index))
            if problem is not None:
                return problem
        for change in changes:
            contact = self.contacts[int(change["id"])]
            replaced = {f["field_id"]: f for f in self._contact_fields(change.get("custom_fields_values")) or []}
            kept = [f for f in contact["custom_fields_values"] or [] if f["field_id"] not in replaced]
            contact["custom_fields_values"] = (kept + list(replaced.values())) or None
            contact["updated_at"] = int(time.time())
        return FakeResponse(200, {"_links": {}, "_embedded": {"contacts": [
            {"id": int(c["id"]), "updated_at": int(time.time())} for c in changes]}})

    # --- leads and notes ------------------------------------------------------------------------------------------

    def _complex(self, request: FakeRequest) -> FakeResponse:
        leads = request.json() or []
        if not isinstance(leads, list) or not 1 <= len(leads) <= 50:
            return invalid("0", "", "Between 1 and 50 leads are accepted")
        for index, lead in enumerate(leads):
            for field in lead.get("custom_fields_values") or []:
                if field.get("field_id") != KEY_FIELD_ID:
                    return invalid(str(lead.get("request_id", index)), "custom_fields_values.0.field_id",
                                    "The value you selected is not a valid choice.")
            contacts = (lead.get("_embedded") or {}).get("contacts") or []
            if len(contacts) > 1 or any(c.get("id") and int(c["id"]) not in self.contacts for c in contacts):
                return invalid(str(lead.get("request_id", index)), "_embedded.contacts", "Contact not found")
            for contact in contacts:
                problem = self._bad_contact(contact.get("custom_fields_values"), str(lead.get("request_id", index)),
                                            "_embedded.contacts.0.")
                if problem is not None:
                    return problem
        answer = []
        for lead in leads:
            contacts = (lead.get("_embedded") or {}).get("contacts") or []
            contact_ids = [int(c["id"]) if c.get("id") else self._store_contact(c) for c in contacts]
            lead_id, now = self.new_id(), int(time.time())
            self.leads[lead_id] = {
                "id": lead_id, "name": lead.get("name", ""), "price": lead.get("price", 0), "created_at": now,
                "updated_at": now, "status_id": lead.get("status_id", 1), "pipeline_id": lead.get("pipeline_id", 1),
                "responsible_user_id": lead.get("responsible_user_id", 1), "is_deleted": False, "created": self.now(),
                "custom_fields_values": [{"field_id": KEY_FIELD_ID, "field_name": "crm-ingest key",
                                          "field_code": None, "field_type": "text", "values": field["values"]}
                                         for field in lead.get("custom_fields_values") or []] or None,
                "tags": [{"id": i, "name": t["name"], "color": None}
                         for i, t in enumerate((lead.get("_embedded") or {}).get("tags") or [], start=1)],
                "contact_ids": contact_ids,
            }
            answer.append({"id": lead_id, "contact_id": contact_ids[0] if contact_ids else None, "company_id": None,
                           "request_id": [str(lead.get("request_id", len(answer)))], "merged": False})
        return FakeResponse(200, answer)

    def _lead_notes(self, request: FakeRequest) -> FakeResponse:
        types = request.query.get("filter[note_type][]") or []
        notes = [n for n in self.notes.values() if n["entity_id"] == int(request.params["id"])
                 and (not types or n["note_type"] in types)]
        if not notes:
            return FakeResponse(204)
        notes.sort(key=lambda n: n["id"], reverse=request.arg("order[id]") == "desc")
        return FakeResponse(200, {"_page": 1, "_links": {}, "_embedded": {"notes": notes}})

    def _add_notes(self, request: FakeRequest) -> FakeResponse:
        items = request.json() or []
        for index, item in enumerate(items):
            if int(item.get("entity_id") or 0) not in self.leads or not (item.get("params") or {}).get("text"):
                return invalid(str(item.get("request_id", index)), "entity_id", "Lead not found or empty text")
        created = []
        for item in items:
            note_id, now = self.new_id(), int(time.time())
            self.notes[note_id] = {"id": note_id, "entity_id": int(item["entity_id"]), "created_by": 0,
                                   "updated_by": 0, "created_at": now, "updated_at": now, "responsible_user_id": 1,
                                   "group_id": 0, "note_type": item.get("note_type", "common"),
                                   "params": item.get("params") or {}, "account_id": 1}
            created.append({"id": note_id, "entity_id": int(item["entity_id"]),
                            "request_id": str(item.get("request_id", len(created)))})
        return FakeResponse(200, {"_links": {}, "_embedded": {"notes": created}})


def _values(entity: dict[str, Any], code: str) -> list[str]:
    return [v["value"] for f in entity.get("custom_fields_values") or [] if f.get("field_code") == code
            for v in f["values"]]


def _norm(code: str, value: str) -> str:
    return value.strip().lower() if code == "EMAIL" else re.sub(r"\D", "", value)[-10:]


def _found_by(entity: dict[str, Any], term: str) -> bool:
    needle = term.strip().lower()
    digits = re.sub(r"\D", "", needle)
    texts = [entity.get("name") or ""] + [str(v.get("value")) for f in entity.get("custom_fields_values") or []
                                          for v in f.get("values") or []]
    return any(needle in text.lower() or (len(digits) >= 5 and digits == needle and digits in re.sub(r"\D", "", text))
               for text in texts)
