"""The Kommo contact field that holds our contact id: written by its code, created on first use.

Every contact we create carries our contact id (`crm-ingest:<id>`) in a text field on contacts, so that a retry finds
the contact a lost attempt created even for a person with neither email nor phone (see KommoLookup.find_contacts).
Kommo lets a write name a custom field by its `code` instead of its per-account id (developers.kommo.com, "Custom
fields"), so writes need no call to find the field, and a first attempt costs what it did before. An account without
the field (the first delivery ever, or an admin deleted it) refuses such a write with a 400: the field is then looked
for by its code in `GET /api/v4/contacts/custom_fields`, created with `POST /api/v4/contacts/custom_fields` (type
text, editable through the API only) when missing, and the write is made once more. Codes are unique in an account:
of two workers creating the field at once, the one refused finds the other's in the listing. Creating a field takes
an administrator's token; the error then says which field an admin should create.

The value carries a prefix because Kommo's search matches parts of values: a bare "17" would hit every phone with 17.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from crm_sync.destinations.base import ContactSnapshot, DeliveryError, PermanentError
from crm_sync.destinations.http import VendorApi
from crm_sync.destinations.kommo_answers import embedded

CODE = "CRM_INGEST_CONTACT_ID"
NAME = "crm-ingest contact id"     # the label shown in Kommo; an admin may rename it, the code stays
FIELDS_PATH = "/api/v4/contacts/custom_fields"
_PAGE, _PAGES = 50, 20
T = TypeVar("T")


def our_value(contact: ContactSnapshot) -> str:
    return f"crm-ingest:{contact.contact_id}"


def our_entry(contact: ContactSnapshot) -> dict[str, Any]:
    """Our contact id as a value of a contact's `custom_fields_values`."""
    return {"field_code": CODE, "values": [{"value": our_value(contact)}]}


class ContactIdField:
    def __init__(self, api: VendorApi):
        self.api = api

    def write(self, call: Callable[[], T], carries: bool = True) -> T:
        """Make a write (`call`) that carries our field (`carries`). If Kommo refuses it and the account turns out to
        have no such field, the field is created and the write made once more; any other refusal stands."""
        try:
            return call()
        except PermanentError as exc:
            if not carries or exc.reason != "validation" or not self._created():
                raise
        return call()

    def _created(self) -> bool:
        """Whether the field was missing and is there now (False: it was there, so a refusal was about another
        value)."""
        if self._exists():
            return False
        payload = [{"name": NAME, "type": "text", "code": CODE, "is_api_only": True}]
        try:
            self.api.json("POST", FIELDS_PATH, json=payload)
        except DeliveryError as exc:
            if isinstance(exc, PermanentError) and self._exists():
                return True   # another worker created it meanwhile
            raise type(exc)(exc.reason, f"{exc.message} — could not create the contact field {NAME!r} (code {CODE}) "
                            "that holds our contact id: it takes an administrator's token, or an admin creates a Text "
                            "field on contacts with that code", exc.retry_after, exc.status,
                            outcome_unknown=exc.outcome_unknown) from exc
        return True

    def _exists(self) -> bool:
        for page in range(1, _PAGES + 1):
            body = self.api.json("GET", FIELDS_PATH, params={"limit": _PAGE, "page": page}, nothing=(204,))
            fields = embedded(body, "custom_fields", f"kommo GET {FIELDS_PATH}")
            if any(field.get("code") == CODE for field in fields):
                return True
            if len(fields) < _PAGE:
                return False
        return False
