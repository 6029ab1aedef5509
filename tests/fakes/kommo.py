"""Fake Kommo (amoCRM) API v4: contacts, leads (with `leads/complex`) and lead notes.

Shapes follow developers.kommo.com and amocrm/amocrm-api-php: HAL bodies `{"_links", "_embedded": {"contacts": […]}}`,
`custom_fields_values` (null when empty) with `field_code` PHONE/EMAIL whose values keep the type they were sent
with (`enum_id` and `enum_code`, either one picks the type), 204 No Content for an empty list, complex answers
`[{"id", "contact_id", "company_id", "request_id": […], "merged"}]`, errors as problem+json (400 with
`validation-errors`). `?query=` is the eventually consistent full-text search (it covers custom field values);
`filter[...]` listings are not. Contact custom fields (`/api/v4/contacts/custom_fields`) are the account's: a value
for a field that does not exist (by `field_id` or `field_code`) is refused with 400; the account starts with PHONE,
EMAIL and crm-ingest's contact id field (`delete_contact_field()` makes it an account that has none yet).
After too many requests Kommo blocks the integration's IP with a 403 (`ip_blocked()`); a 403 for an IP missing from
the account's whitelist carries error code 113 (`ip_not_whitelisted()`).
"""
from __future__ import annotations

import re
import time
from typing import Any

from tests.fakes.base import FakeCRM, FakeRequest, FakeResponse
from tests.fakes.faults import Fault

TOKEN = "kommo-long-lived-test-token"
KEY_FIELD_ID = 771001
CONTACT_ID_FIELD_ID, CONTACT_ID_CODE = 264915, "CRM_INGEST_CONTACT_ID"
_CONTACT_FIELDS = [(264911, "Phone", "PHONE", "multitext"), (264913, "Email", "EMAIL", "multitext"),
                   (CONTACT_ID_FIELD_ID, "crm-ingest contact id", CONTACT_ID_CODE, "text")]
_FIELD_TYPES = {"text", "numeric", "checkbox", "select", "multiselect", "date", "url", "textarea", "radiobutton",
                "streetaddress", "smart_address", "birthday", "legal_entity", "date_time", "file", "monetary"}
# The types of a contact's phones and emails: enum code -> enum id (ids are per account in Kommo).
ENUMS = {"PHONE": {"WORK": 310001, "WORKDD": 310003, "MOB": 310005, "FAX": 310007, "HOME": 310009, "OTHER": 310011},
         "EMAIL": {"WORK": 310013, "PRIV": 310015, "OTHER": 310017}}


def problem(status: int, title: str, **extra: Any) -> FakeResponse:
    return FakeResponse(status, {"title": title, "type": f"https://httpstatus.es/{status}", "status": status,
                                 "detail": extra.pop("detail", title), **extra},
                        content_type="application/problem+json")


def ip_blocked(match: str | None = None) -> Fault:
    """The IP restriction Kommo puts on an integration that keeps exceeding its limit: a 403 without an error code."""
    return Fault.respond(403, {"title": "Forbidden", "type": "https://httpstatus.es/403", "status": 403,
                               "detail": "Forbidden"}, match, content_type="application/problem+json")


def ip_not_whitelisted(match: str | None = None) -> Fault:
    """An account that lets the API in only from whitelisted IPs, called from another: 403 with error code 113."""
    return Fault.respond(403, {"response": {"error": "Access to this account is prohibited from your IP address",
                                            "error_code": "113", "ip": "127.0.0.1", "domain": "acme.kommo.com",
                                            "server_time": int(time.time())}}, match)


def _invalid(request_id: str, path: str, detail: str) -> FakeResponse:
    return problem(400, "Bad Request", detail="Request validation failed", **{"validation-errors": [
        {"request_id": request_id, "errors": [{"code": "NotSupportedChoice", "path": path, "detail": detail}]}]})


class KommoFake(FakeCRM):
    vendor = "kommo"

    def __init__(self) -> None:
        super().__init__()
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, dict[str, Any]] = {}
        self.contact_fields: dict[int, dict[str, Any]] = {
            field_id: _field(field_id, name, code, kind) for field_id, name, code, kind in _CONTACT_FIELDS}
        self.route("GET", "/api/v4/contacts/custom_fields", self._list_fields)
        self.route("POST", "/api/v4/contacts/custom_fields", self._create_fields)
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

    def delete_contact_field(self, field_id: int = CONTACT_ID_FIELD_ID) -> None:
        """An admin deletes a contact field (DELETE /api/v4/contacts/custom_fields/{id}): its values go with it."""
        with self.lock:
            del self.contact_fields[field_id]
            for contact in self.contacts.values():
                kept = [f for f in contact["custom_fields_values"] or [] if f["field_id"] != field_id]
                contact["custom_fields_values"] = kept or None

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

    def _contact_fields(self, fields: Any) -> list[dict[str, Any]] | None:
        stored = []
        for given in fields or []:
            field = self._contact_field(given)
            values = [_typed(field["code"], v) if field["type"] == "multitext" else {"value": v["value"]}
                      for v in given.get("values") or [] if v.get("value") not in (None, "")] if field else []
            if values:
                stored.append({"field_id": field["id"], "field_name": field["name"], "field_code": field["code"],
                               "field_type": field["type"], "values": values})
        return stored or None

    def _contact_field(self, given: dict[str, Any]) -> dict[str, Any] | None:
        return next((f for f in self.contact_fields.values() if (given.get("field_id") and f["id"] ==
                     given["field_id"]) or (given.get("field_code") and f["code"] == given["field_code"])), None)

    def _bad_contact(self, fields: Any, request_id: str, path: str = "") -> FakeResponse | None:
        """A contact's values refused: for a field the account does not have, or a type its field does not know."""
        for index, field in enumerate(fields or []):
            if self._contact_field(field) is None:
                return _invalid(request_id, f"{path}custom_fields_values.{index}.field_code",
                                "The value you selected is not a valid choice.")
        return _bad_enum(fields, request_id)

    # --- contact fields -------------------------------------------------------------------------------------------

    def _list_fields(self, request: FakeRequest) -> FakeResponse:
        limit, page = min(int(request.arg("limit", "50")), 50), int(request.arg("page", "1"))
        rows = list(self.contact_fields.values())[(page - 1) * limit:page * limit]
        if not rows:
            return FakeResponse(204)
        return FakeResponse(200, {"_total_items": len(self.contact_fields), "_page": page, "_page_count": -(-len(
            self.contact_fields) // limit), "_links": {}, "_embedded": {"custom_fields": rows}})

    def _create_fields(self, request: FakeRequest) -> FakeResponse:
        bodies = request.json() or []
        codes = [f["code"] for f in self.contact_fields.values() if f["code"]]
        for index, body in enumerate(bodies):
            if not body.get("name") or body.get("type") not in _FIELD_TYPES or (body.get("code") in codes):
                return _invalid(str(index), "code" if body.get("code") in codes else "type",
                                "A field needs a name and a known type; its code must be unique")
            codes.append(body.get("code"))
        created = []
        for body in bodies:
            field_id = self.new_id()
            self.contact_fields[field_id] = _field(field_id, body["name"], body.get("code"), body["type"],
                                                   bool(body.get("is_api_only")))
            created.append(self.contact_fields[field_id])
        return FakeResponse(200, {"_total_items": len(created), "_embedded": {"custom_fields": created}})

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
            return _invalid("0", "id", "Contact not found")
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
            return _invalid("0", "", "Between 1 and 50 leads are accepted")
        for index, lead in enumerate(leads):
            for field in lead.get("custom_fields_values") or []:
                if field.get("field_id") != KEY_FIELD_ID:
                    return _invalid(str(lead.get("request_id", index)), "custom_fields_values.0.field_id",
                                    "The value you selected is not a valid choice.")
            contacts = (lead.get("_embedded") or {}).get("contacts") or []
            if len(contacts) > 1 or any(c.get("id") and int(c["id"]) not in self.contacts for c in contacts):
                return _invalid(str(lead.get("request_id", index)), "_embedded.contacts", "Contact not found")
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
                return _invalid(str(item.get("request_id", index)), "entity_id", "Lead not found or empty text")
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


def _field(field_id: int, name: str, code: str | None, kind: str, api_only: bool = False) -> dict[str, Any]:
    return {"id": field_id, "name": name, "code": code, "type": kind, "sort": 500, "entity_type": "contacts",
            "is_predefined": kind == "multitext", "is_deletable": kind != "multitext", "is_api_only": api_only,
            "enums": [{"id": i, "value": c, "sort": n} for n, (c, i) in enumerate(ENUMS.get(code, {}).items())] or None,
            "group_id": None, "required_statuses": [], "_links": {}}


def _typed(code: str, value: dict[str, Any]) -> dict[str, Any]:
    """A value as stored: with the type it was sent (by enum_code or enum_id; both are answered), or none."""
    enums = ENUMS[code]
    enum_code = value.get("enum_code") or next((c for c, i in enums.items() if i == value.get("enum_id")), None)
    typed = {"value": value["value"]}
    if enum_code:
        typed.update(enum_id=enums[enum_code], enum_code=enum_code)
    return typed


def _bad_enum(fields: Any, request_id: str) -> FakeResponse | None:
    for index, field in enumerate(fields or []):
        enums = ENUMS.get(field.get("field_code"), {})
        for value in field.get("values") or []:
            if (value.get("enum_code") and value["enum_code"] not in enums) or (
                    value.get("enum_id") and value["enum_id"] not in enums.values()):
                return _invalid(request_id, f"custom_fields_values.{index}.values", "Enum is not valid")
    return None


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
