"""The fake Pipedrive account's person fields (API v1 `personFields`): the standard ones, custom fields keyed by a
random 40-character hash, and custom values (`custom_fields: {<key>: value}`) checked against them."""
from __future__ import annotations

import hashlib
import uuid
from typing import Any

from tests.fakes.base import FakeRequest, FakeResponse
from tests.fakes.pipedrive_envelope import error, now_text, ok

# Only these custom field types are searchable (developers.pipedrive.com, "Search persons": `fields`).
SEARCHABLE_TYPES = {"address", "varchar", "text", "varchar_auto", "double", "monetary", "phone"}
_STANDARD_FIELDS = [("name", "Name", "varchar"), ("email", "Email", "varchar"), ("phone", "Phone", "phone"),
                    ("owner_id", "Owner", "user"), ("org_id", "Organization", "org")]
_STANDARD_KEYS = {key for key, _, _ in _STANDARD_FIELDS}


class PersonFields:
    """The person field catalogue of a `FakeCRM` that keeps `self.persons`: mixed into `PipedriveFake` before
    `FakeCRM`, it sets up the standard fields and serves their routes."""

    persons: dict[int, dict[str, Any]]

    def __init__(self) -> None:
        super().__init__()
        self.person_fields: dict[int, dict[str, Any]] = {}
        for key, name, field_type in _STANDARD_FIELDS:
            self._store_field({"name": name, "field_type": field_type}, key=key)
        self.route("GET", "/api/v1/personFields", self._list_fields)
        self.route("POST", "/api/v1/personFields", self._create_field)

    # --- what tests look at ---------------------------------------------------------------------------------------

    def custom_value(self, person_id: int | str, field_name: str) -> Any:
        (key,) = [f["key"] for f in self.person_fields.values() if f["name"] == field_name]
        return self.persons[int(person_id)]["custom_fields"].get(key)

    def seed_field(self, name: str, field_type: str = "varchar") -> str:
        """A person field an admin added; its key."""
        with self.lock:
            return self._store_field({"name": name, "field_type": field_type})["key"]

    # --- custom values --------------------------------------------------------------------------------------------

    def _custom_keys(self, types: set[str] | None = None) -> list[str]:
        return [f["key"] for f in self.person_fields.values()
                if f["key"] not in _STANDARD_KEYS and (types is None or f["field_type"] in types)]

    def _unknown_custom_fields(self, body: dict[str, Any]) -> FakeResponse | None:
        unknown = sorted(set(body.get("custom_fields") or {}) - set(self._custom_keys()))
        return error(400, f"Validation failed: custom_fields: unknown field key(s) {', '.join(unknown)}") \
            if unknown else None

    # --- person fields (v1) ----------------------------------------------------------------------------------------

    def _store_field(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        field_id = 9000 + len(self.person_fields) + 1
        # A custom field's key is a random 40-character hash; standard fields are keyed by their own names.
        field_key = key or hashlib.sha1(f"{field_id}:{uuid.uuid4()}".encode()).hexdigest()
        self.person_fields[field_id] = {
            "id": field_id, "key": field_key, "name": body["name"], "field_type": body["field_type"],
            "order_nr": len(self.person_fields), "add_time": now_text(), "update_time": now_text(),
            "active_flag": True, "edit_flag": key is None, "add_visible_flag": body.get("add_visible_flag", True),
            "searchable_flag": body["field_type"] in SEARCHABLE_TYPES, "mandatory_flag": False, "options": None}
        return self.person_fields[field_id]

    def _list_fields(self, request: FakeRequest) -> FakeResponse:
        rows = list(self.person_fields.values())
        start, limit = int(request.arg("start", "0")), min(int(request.arg("limit", "100")), 500)
        return ok(rows[start:start + limit], start=start, limit=limit,
                  more_items_in_collection=start + limit < len(rows))

    def _create_field(self, request: FakeRequest) -> FakeResponse:
        body = request.json() or {}
        if not body.get("name") or not body.get("field_type"):
            return error(400, "Validation failed: name and field_type are required")
        return ok(self._store_field(body))
