"""Pipedrive persons: found by our contact id, email or phone, created carrying our contact id, completed without loss.

Pipedrive has neither an idempotency key nor an upsert, and its search lags behind writes (a record is searchable
only once indexed). So:
- Every person we create carries our contact id in a person field (see pipedrive_contact_field). A look-up that may
  follow a create of ours whose answer was lost — a retry, or a later delivery of a contact whose create this drain
  saw go unanswered — first looks for that id: among the persons changed in the last `recent_window_seconds` (a
  listing reads the records themselves, so it sees a person created a moment ago, and it is no search), then by an
  exact search of custom fields (which sees everyone older than the index lag). It is the only way to find a person
  with neither email nor phone.
- Then search by exact email and by phone (the last ten digits, compared digit by digit here) finds a person someone
  else created. A first attempt that finds nobody this way also reads the recent listing, where a person another
  delivery of ours created a moment ago (its link not stored yet) shows up by email, phone or our id.
- A first attempt spends no search on our id: for a contact whose create nobody has attempted, there is none.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from crm_sync.destinations.base import ContactSnapshot, PermanentError, TransientError
from crm_sync.destinations.content import display_name, matches_person, phone_digits, same_email, same_phone
from crm_sync.destinations.http import VendorApi, json_or_none
from crm_sync.destinations.pipedrive_api import PAGE_SIZE, PAGES, entries, values
from crm_sync.destinations.pipedrive_contact_field import ContactIdField, our_value

PERSONS = "/api/v2/persons"
_SEARCH_HITS = 10   # hits read per search; a search by our id verifies them all in one listing by ids


class PersonDirectory:
    def __init__(self, api: VendorApi, contact_field: ContactIdField, recent_window_seconds: float,
                 owner_id: int | None = None):
        self.api, self.contact_field = api, contact_field
        self.recent_window_seconds, self.owner_id = recent_window_seconds, owner_id
        # Contacts whose create went unanswered in this drain: their person may exist all the same, so a later
        # delivery of theirs (another interaction, attempt 1) looks for our id first, as a retry does.
        self._maybe_created: set[int] = set()

    # --- look-ups -------------------------------------------------------------------------------------------------

    def read(self, person_id: str) -> dict[str, Any] | None:
        """A person by id; None when Pipedrive has none or it was deleted."""
        response = self.api.request("GET", f"{PERSONS}/{person_id}", params=self._custom_fields_param(),
                                    accept=(404, 410))
        data = (json_or_none(response) or {}).get("data") if response.status_code == 200 else None
        return data if data and not data.get("is_deleted") else None

    def find(self, contact: ContactSnapshot, after_an_attempt: bool) -> dict[str, Any] | None:
        """The person for this contact; `after_an_attempt`: an earlier attempt of this delivery may have created it."""
        if after_an_attempt or contact.contact_id in self._maybe_created:
            person = self._recently_changed(contact) or self._searched_by_our_id(contact)
            return person or self._searched_by_email_or_phone(contact)
        person = self._searched_by_email_or_phone(contact)
        if person is None and (contact.emails or contact.phones):
            person = self._recently_changed(contact)
        return person

    def _searched_by_our_id(self, contact: ContactSnapshot) -> dict[str, Any] | None:
        # Any custom field holding the same text is a hit too: the records say which hit carries it in ours.
        hits = [str(item["id"]) for item in self._search(our_value(contact), "custom_fields", exact=True)]
        if not hits:
            return None
        body = self.api.json("GET", PERSONS, params={"ids": ",".join(hits), **self._custom_fields_param()}) or {}
        return next((person for person in body.get("data") or [] if self._carries_our_id(person, contact)), None)

    def _searched_by_email_or_phone(self, contact: ContactSnapshot) -> dict[str, Any] | None:
        searches = [("email", email, True) for email in contact.emails[:2]]
        # Phones are stored as people typed them: search by the last digits, then compare the digits ourselves.
        searches += [("phone", phone_digits(phone)[-10:], False) for phone in contact.phones[:2]]
        for field, term, exact in searches:
            if len(term) < 2:
                continue
            for item in self._search(term, field, exact):
                if matches_person(contact, values(item.get("emails")), values(item.get("phones"))):
                    # A search hit lists values as bare strings: read the person to update it without loss.
                    person = self.read(str(item["id"]))
                    if person is not None:
                        return person
        return None

    def _search(self, term: str, field: str, exact: bool) -> list[dict[str, Any]]:
        body = self.api.json("GET", f"{PERSONS}/search", params={
            "term": term, "fields": field, "exact_match": str(exact).lower(), "limit": _SEARCH_HITS})
        return [hit.get("item") or {} for hit in ((body or {}).get("data") or {}).get("items") or []]

    def _recently_changed(self, contact: ContactSnapshot) -> dict[str, Any] | None:
        since = datetime.now(timezone.utc) - timedelta(seconds=self.recent_window_seconds)
        params: dict[str, Any] = {"updated_since": since.strftime("%Y-%m-%dT%H:%M:%SZ"), "sort_by": "update_time",
                                  "sort_direction": "desc", "limit": PAGE_SIZE, **self._custom_fields_param()}
        for _ in range(PAGES):
            body = self.api.json("GET", PERSONS, params=params) or {}
            for person in body.get("data") or []:
                if self._carries_our_id(person, contact) or \
                        matches_person(contact, values(person.get("emails")), values(person.get("phones"))):
                    return person
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return None
            params["cursor"] = cursor
        return None

    def _carries_our_id(self, person: dict[str, Any], contact: ContactSnapshot) -> bool:
        return self.contact_field.value(person) == our_value(contact)

    def _custom_fields_param(self) -> dict[str, str]:
        """Persons are read with our field only among their custom fields: smaller answers, and all we look at."""
        return {"custom_fields": self.contact_field.key()}

    # --- writes ---------------------------------------------------------------------------------------------------

    def create(self, contact: ContactSnapshot) -> str:
        payload: dict[str, Any] = {
            "name": display_name(contact),
            "emails": [{"value": e, "primary": i == 0, "label": "work"} for i, e in enumerate(contact.emails)],
            "phones": [{"value": p, "primary": i == 0, "label": "work"} for i, p in enumerate(contact.phones)],
        }
        if self.owner_id:
            payload["owner_id"] = self.owner_id
        try:
            body = self._write_with_our_id("POST", PERSONS, lambda key: {
                **payload, "custom_fields": {key: our_value(contact)}})
        except TransientError:
            self._maybe_created.add(contact.contact_id)
            raise
        return str(body["data"]["id"])

    def complete(self, contact: ContactSnapshot, person: dict[str, Any]) -> None:
        """Add our new emails and phones to a person, and our contact id when the record holds none (a person someone
        else created): never a value of theirs replaced, and no write at all when nothing is missing."""
        emails, phones = entries(person.get("emails")), entries(person.get("phones"))
        new_emails = [e for e in contact.emails if not any(same_email(e, x["value"]) for x in emails)]
        new_phones = [p for p in contact.phones if not any(same_phone(p, x["value"]) for x in phones)]
        changes: dict[str, Any] = {}
        if new_emails:
            changes["emails"] = emails + [{"value": e, "primary": not emails and i == 0, "label": "work"}
                                          for i, e in enumerate(new_emails)]
        if new_phones:
            changes["phones"] = phones + [{"value": p, "primary": not phones and i == 0, "label": "work"}
                                          for i, p in enumerate(new_phones)]
        path = f"{PERSONS}/{person['id']}"
        if self.contact_field.value(person) is None:
            self._write_with_our_id("PATCH", path, lambda key: {**changes, "custom_fields": {key: our_value(contact)}})
        elif changes:   # v2 PATCH replaces a list, so the existing entries are sent along
            self.api.json("PATCH", path, json=changes)

    def _write_with_our_id(self, method: str, path: str, payload: Callable[[str], dict[str, Any]]) -> Any:
        """A write that carries our contact id under the field's key (`payload(key)`). When Pipedrive refuses it and
        the key turns out to be stale (the field was deleted), it is made once more with the key of today."""
        try:
            return self.api.json(method, path, json=payload(self.contact_field.key()))
        except PermanentError as exc:
            if exc.reason != "validation" or not self.contact_field.refresh():
                raise
            return self.api.json(method, path, json=payload(self.contact_field.key()))
