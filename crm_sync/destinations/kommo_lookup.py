"""Kommo (amoCRM) reads: contacts by email/phone or our contact id, our own leads by key, the shapes of custom fields.

`?query=` is Kommo's full-text search and lags behind writes; `filter[...]` listings read the records themselves. So
every lookup for something we may have written a moment ago first lists what changed in the last
`recent_window_seconds` (one listing serves a whole batch) and matches it here, on our side; search covers the rest.
A lookup error is returned per person or key, so that one failed search fails only its own deliveries.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

from crm_sync.destinations.base import ContactSnapshot, DeliveryError
from crm_sync.destinations.content import matches_person, phone_digits
from crm_sync.destinations.http import VendorApi
from crm_sync.destinations.kommo_answers import embedded, kommo_id
from crm_sync.destinations.kommo_contact_field import CODE, our_value

_PAGE, _PAGES = 250, 5


def field_entries(entity: dict[str, Any], *, code: str | None = None, field_id: int | None = None
                  ) -> list[dict[str, Any]]:
    """The values of one custom field as Kommo returned them, with their type (`enum_id`, `enum_code`) where they
    have one (`custom_fields_values` is null on an entity without any)."""
    entries: list[dict[str, Any]] = []
    for field in _dicts(entity.get("custom_fields_values")):
        if (code and field.get("field_code") == code) or (field_id and field.get("field_id") == field_id):
            entries += [v for v in _dicts(field.get("values")) if isinstance(v.get("value"), (str, int, float))
                        and v.get("value") != ""]
    return entries


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a list in a Kommo answer (null, or anything else that is not a list: none)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def field_values(entity: dict[str, Any], *, code: str | None = None, field_id: int | None = None) -> list[str]:
    return [str(v["value"]) for v in field_entries(entity, code=code, field_id=field_id)]


def multitext(code: str, new: list[str], existing: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """A PHONE or EMAIL field: the existing values exactly as Kommo returned them (PATCH replaces the whole list, so
    a value sent with another type, or none, would lose its own: a mobile phone would turn into a work one), then
    the new ones, typed WORK. Both enum keys go back as they came, as Kommo's own PHP client sends them."""
    kept = [{"value": entry["value"], **{name: entry[name] for name in ("enum_id", "enum_code")
                                          if entry.get(name) not in (None, "")}} for entry in existing]
    return {"field_code": code, "values": kept + [{"value": v, "enum_code": "WORK"} for v in new]}


class KommoLookup:
    def __init__(self, api: VendorApi, key_field_id: int, recent_window_seconds: float):
        self.api, self.key_field_id, self.window = api, key_field_id, recent_window_seconds

    def contacts_by_id(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        params = [("filter[id][]", i) for i in ids] + [("limit", str(_PAGE))]
        return {kommo_id(c["id"]): c for c in self._embedded("/api/v4/contacts", params, "contacts")}

    def find_contacts(self, contacts: list[ContactSnapshot], retried: set[int] = frozenset()
                      ) -> dict[int, dict[str, Any] | DeliveryError]:
        """Kommo's contact (or the lookup's error) for each person found by email or phone: among the contacts
        changed lately (one listing for the whole batch, and the only way to see a contact created a moment ago),
        then by search. A person in `retried` (an earlier attempt may have created their contact) not found so is
        looked for by our contact id as well, in the same listing, then by search: a person with neither email nor
        phone can be found no other way. A first attempt spends nothing on our id: nobody created a contact yet."""
        found: dict[int, dict[str, Any] | DeliveryError] = {}
        searchable = [c for c in contacts if c.emails or c.phones]
        ours = [c for c in contacts if c.contact_id in retried]
        if not searchable and not ours:
            return found
        recent = list(self._recent("/api/v4/contacts", "contacts", "updated_at"))
        for entity in recent:
            for contact in [c for c in searchable if c.contact_id not in found]:
                if self._first_match(contact, [entity]):
                    found[contact.contact_id] = entity
        self._searched(found, [c for c in searchable if c.contact_id not in found], self._search_contact)
        for contact in [c for c in ours if c.contact_id not in found]:
            match = next((entity for entity in recent if self.carries_our_id(entity, contact)), None)
            if match:
                found[contact.contact_id] = match
        self._searched(found, [c for c in ours if c.contact_id not in found], self._search_our_id)
        return found

    @staticmethod
    def carries_our_id(entity: dict[str, Any], contact: ContactSnapshot) -> bool:
        return our_value(contact) in field_values(entity, code=CODE)

    @staticmethod
    def _searched(found: dict[int, Any], contacts: list[ContactSnapshot], search: Any) -> None:
        for contact in contacts:
            try:
                match = search(contact)
            except DeliveryError as exc:
                found[contact.contact_id] = exc
                continue
            if match:
                found[contact.contact_id] = match

    def _search_our_id(self, contact: ContactSnapshot) -> dict[str, Any] | None:
        # The search matches parts of values too: the hits say which one carries exactly our value.
        hits = self._embedded("/api/v4/contacts", [("query", our_value(contact)), ("limit", str(_PAGE))], "contacts")
        return next((hit for hit in hits if self.carries_our_id(hit, contact)), None)

    def _search_contact(self, contact: ContactSnapshot) -> dict[str, Any] | None:
        for term in [*contact.emails[:2], *(phone_digits(p)[-10:] for p in contact.phones[:2])]:
            hits = self._embedded("/api/v4/contacts", [("query", term), ("limit", "50")], "contacts")
            match = self._first_match(contact, hits)
            if match:
                return match
        return None

    def find_leads(self, keys: list[str], searched: set[str] | None = None
                   ) -> dict[str, dict[str, Any] | DeliveryError]:
        """Our lead (or the lookup's error) per delivery key found: among the leads created lately (one listing
        for the whole batch, consistent), then by search for the keys still missing (older leads) that are in
        `searched` (default: all of them)."""
        found: dict[str, dict[str, Any] | DeliveryError] = {}
        if not keys:
            return found
        for lead in self._recent("/api/v4/leads", "leads", "created_at", with_contacts=True):
            for key in set(field_values(lead, field_id=self.key_field_id)) & set(keys):
                found.setdefault(key, lead)
        for key in [k for k in keys if k not in found and (searched is None or k in searched)]:
            try:
                hits = self._embedded("/api/v4/leads", [("query", key), ("with", "contacts")], "leads")
            except DeliveryError as exc:
                found[key] = exc
                continue
            lead = next((h for h in hits if key in field_values(h, field_id=self.key_field_id)), None)
            if lead:
                found[key] = lead
        return found

    def lead_has_note(self, lead_id: str, marker_test: Any) -> str | None:
        params = [("filter[note_type][]", "common"), ("limit", str(_PAGE)), ("order[id]", "desc")]
        for note in self._embedded(f"/api/v4/leads/{lead_id}/notes", params, "notes"):
            if isinstance(note.get("params"), dict) and marker_test(note["params"].get("text")):
                return kommo_id(note["id"])
        return None

    @staticmethod
    def main_contact_id(lead: dict[str, Any]) -> str | None:
        """The lead's main contact (or its first); None when the lead shows none with a usable id."""
        linked = lead.get("_embedded")
        contacts = _dicts(linked.get("contacts")) if isinstance(linked, dict) else []
        main = next((c for c in contacts if c.get("is_main")), contacts[0] if contacts else None)
        return kommo_id(main.get("id")) if main else None

    def _first_match(self, contact: ContactSnapshot, entities: Any) -> dict[str, Any] | None:
        for entity in entities:
            if matches_person(contact, field_values(entity, code="EMAIL"), field_values(entity, code="PHONE")):
                return entity
        return None

    def _recent(self, path: str, name: str, stamp: str, with_contacts: bool = False) -> Iterator[dict[str, Any]]:
        since = int(time.time() - self.window)
        params = [(f"filter[{stamp}][from]", str(since)), (f"order[{stamp}]", "desc"), ("limit", str(_PAGE))]
        if with_contacts:
            params.append(("with", "contacts"))
        for page in range(1, _PAGES + 1):
            entities = self._embedded(path, [*params, ("page", str(page))], name)
            yield from entities
            if len(entities) < _PAGE:
                return

    def _embedded(self, path: str, params: list[tuple[str, str]], name: str) -> list[dict[str, Any]]:
        body = self.api.json("GET", path, params=params, nothing=(204,))   # 204 No Content: nothing matched
        return embedded(body, name, f"kommo GET {path}")
