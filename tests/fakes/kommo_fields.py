"""The fake Kommo account's contact custom fields (`/api/v4/contacts/custom_fields`), and contact values checked
against them.

The account starts with PHONE, EMAIL and crm-ingest's contact id field (`delete_contact_field()` makes it an account
that has none yet). A value for a field that does not exist (by `field_id` or `field_code`) is refused with 400. PHONE
and EMAIL values keep the type they were sent with (`enum_id` and `enum_code`, either one picks the type; both are
answered); a type the field does not know is refused.
"""
from __future__ import annotations

from typing import Any

from tests.fakes.base import FakeRequest, FakeResponse
from tests.fakes.kommo_errors import invalid

CONTACT_ID_FIELD_ID, CONTACT_ID_CODE = 264915, "CRM_INGEST_CONTACT_ID"
_CONTACT_FIELDS = [(264911, "Phone", "PHONE", "multitext"), (264913, "Email", "EMAIL", "multitext"),
                   (CONTACT_ID_FIELD_ID, "crm-ingest contact id", CONTACT_ID_CODE, "text")]
_FIELD_TYPES = {"text", "numeric", "checkbox", "select", "multiselect", "date", "url", "textarea", "radiobutton",
                "streetaddress", "smart_address", "birthday", "legal_entity", "date_time", "file", "monetary"}
# The types of a contact's phones and emails: enum code -> enum id (ids are per account in Kommo).
ENUMS = {"PHONE": {"WORK": 310001, "WORKDD": 310003, "MOB": 310005, "FAX": 310007, "HOME": 310009, "OTHER": 310011},
         "EMAIL": {"WORK": 310013, "PRIV": 310015, "OTHER": 310017}}


class ContactFields:
    """The contact field catalogue of a `FakeCRM` that keeps `self.contacts`: mixed into `KommoFake` before
    `FakeCRM`, it sets up the account's starting fields and serves their routes."""

    contacts: dict[int, dict[str, Any]]

    def __init__(self) -> None:
        super().__init__()
        self.contact_fields: dict[int, dict[str, Any]] = {
            field_id: _field(field_id, name, code, kind) for field_id, name, code, kind in _CONTACT_FIELDS}
        self.route("GET", "/api/v4/contacts/custom_fields", self._list_fields)
        self.route("POST", "/api/v4/contacts/custom_fields", self._create_fields)

    def delete_contact_field(self, field_id: int = CONTACT_ID_FIELD_ID) -> None:
        """An admin deletes a contact field (DELETE /api/v4/contacts/custom_fields/{id}): its values go with it."""
        with self.lock:
            del self.contact_fields[field_id]
            for contact in self.contacts.values():
                kept = [f for f in contact["custom_fields_values"] or [] if f["field_id"] != field_id]
                contact["custom_fields_values"] = kept or None

    # --- contact values -------------------------------------------------------------------------------------------

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
                return invalid(request_id, f"{path}custom_fields_values.{index}.field_code",
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
                return invalid(str(index), "code" if body.get("code") in codes else "type",
                               "A field needs a name and a known type; its code must be unique")
            codes.append(body.get("code"))
        created = []
        for body in bodies:
            field_id = self.new_id()
            self.contact_fields[field_id] = _field(field_id, body["name"], body.get("code"), body["type"],
                                                   bool(body.get("is_api_only")))
            created.append(self.contact_fields[field_id])
        return FakeResponse(200, {"_total_items": len(created), "_embedded": {"custom_fields": created}})


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
                return invalid(request_id, f"custom_fields_values.{index}.values", "Enum is not valid")
    return None
