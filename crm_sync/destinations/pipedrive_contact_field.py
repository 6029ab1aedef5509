"""The Pipedrive person field that holds our contact id: found by its name, created when missing, its key cached.

Pipedrive refers to a custom field by a random 40-character `key` that differs per account (pipedrive.readme.io,
"Custom fields"), so the field is looked up by name in `GET /v1/personFields`, and created with `POST /v1/personFields`
(type `varchar`, a text field the person search can search) when the account has none. Nobody has to set anything
up; an account whose token may not add fields gets a dead delivery saying which field an admin should create.

The key is cached per process and account: resolving it costs one listing per worker process, not one per drain.
A cached key can outlive its field (an admin deleted it); `refresh` looks it up again when Pipedrive refuses a write.
"""
from __future__ import annotations

import threading
from typing import Any

from crm_sync.destinations.base import ContactSnapshot, PermanentError, TransientError
from crm_sync.destinations.http import VendorApi
from crm_sync.destinations.pipedrive_api import flat_pagination, v1_pages

FIELDS_PATH = "/api/v1/personFields"

_KEYS: dict[tuple[str, str], str] = {}   # (account URL, field name) → the field's key
# Held while a key is resolved, so that the threads of one process never create the field twice.
_RESOLVING = threading.Lock()


def _number(value: Any) -> int:
    return int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else 0


def our_value(contact: ContactSnapshot) -> str:
    return str(contact.contact_id)


class ContactIdField:
    def __init__(self, api: VendorApi, account_url: str, name: str):
        self.api, self.name = api, name
        self._cache_key = (account_url.rstrip("/").lower(), name)

    def key(self) -> str:
        if cached := _KEYS.get(self._cache_key):
            return cached
        with _RESOLVING:
            if self._cache_key not in _KEYS:
                _KEYS[self._cache_key] = self._existing_key() or self._created_key()
            return _KEYS[self._cache_key]

    def refresh(self) -> bool:
        """Look the key up again; whether it changed (the field we knew is gone, another was found or created)."""
        with _RESOLVING:
            before = _KEYS.pop(self._cache_key, None)
            _KEYS[self._cache_key] = self._existing_key() or self._created_key()
            return _KEYS[self._cache_key] != before

    def value(self, person: dict[str, Any]) -> str | None:
        """The contact id a person record carries (`custom_fields` of API v2; null where it holds nothing)."""
        fields = person.get("custom_fields")
        value = fields.get(self.key()) if isinstance(fields, dict) else None
        return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "" else None

    def _existing_key(self) -> str | None:
        """The oldest field of our name: two processes that each created one settle on the same field."""
        ours = [field for field in v1_pages(self.api, FIELDS_PATH, {}, flat_pagination)
                if field.get("name") == self.name and isinstance(field.get("key"), str) and field["key"]
                and field.get("active_flag", True)]
        return min(ours, key=lambda field: _number(field.get("id")))["key"] if ours else None

    def _created_key(self) -> str:
        # Kept out of the "add person" form: salespeople have nothing to type there.
        payload = {"name": self.name, "field_type": "varchar", "add_visible_flag": False}
        try:
            self.api.json("POST", FIELDS_PATH, json=payload)
        except PermanentError as exc:
            raise PermanentError(exc.reason, f"{exc.message} — could not create the person field {self.name!r} "
                                 "that holds our contact id: let an admin create a Text person field of that name",
                                 status=exc.status) from exc
        # Listed again rather than taken from the answer: if another process (a destination on the same account)
        # created one meanwhile, both use the oldest. An answer lost after the field was made fails this delivery
        # only; the next attempt finds the field by its name instead of making a second one.
        key = self._existing_key()
        if key is None:
            raise TransientError("crm_unavailable", f"pipedrive: the person field {self.name!r} was created but "
                                 "is not listed yet")
        return key
