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

from crm_sync.destinations.base import ContactSnapshot, PermanentError, TransientError, crm_id
from crm_sync.destinations.content import display_name, matches_person, phone_digits, same_email, same_phone
from crm_sync.destinations.http import VendorApi, answer_member
from crm_sync.destinations.pipedrive_api import PAGE_SIZE, PAGES, additional_data, created_id, data, entries, \
    envelope_data, listed, values
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
        path = f"{PERSONS}/{person_id}"
        response = self.api.request("GET", path, params=self._custom_fields_param(), accept=(404, 410))
        if response.status_code in (404, 410):
            return None
        what = f"pipedrive GET {path}"
        (person,) = listed([envelope_data(self.api.answer(response, what), what, dict, written=False)], what)
        return None if person.get("is_deleted") else person

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
        hits = [crm_id(item["id"]) for item in self._search(our_value(contact), "custom_fields", exact=True)]
        if not hits:
            return None
        persons = data(self.api, "GET", PERSONS, (list, type(None)),
                       params={"ids": ",".join(hits), **self._custom_fields_param()})
        return next((person for person in listed(persons or [], f"pipedrive GET {PERSONS}")
                     if self._carries_our_id(person, contact)), None)

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
                    person = self.read(crm_id(item["id"]))
                    if person is not None:
                        return person
        return None

    def _search(self, term: str, field: str, exact: bool) -> list[dict[str, Any]]:
        what = f"pipedrive GET {PERSONS}/search"
        found = data(self.api, "GET", f"{PERSONS}/search", params={
            "term": term, "fields": field, "exact_match": str(exact).lower(), "limit": _SEARCH_HITS})
        hits = answer_member(found, "items", list, what, written=False)
        return listed([hit.get("item") if isinstance(hit, dict) else hit for hit in hits], what)

    def _recently_changed(self, contact: ContactSnapshot) -> dict[str, Any] | None:
        since = datetime.now(timezone.utc) - timedelta(seconds=self.recent_window_seconds)
        params: dict[str, Any] = {"updated_since": since.strftime("%Y-%m-%dT%H:%M:%SZ"), "sort_by": "update_time",
                                  "sort_direction": "desc", "limit": PAGE_SIZE, **self._custom_fields_param()}
        what = f"pipedrive GET {PERSONS}"
        for _ in range(PAGES):
            body = self.api.json("GET", PERSONS, params=params)
            for person in listed(envelope_data(body, what, (list, type(None)), written=False) or [], what):
                if self._carries_our_id(person, contact) or \
                        matches_person(contact, values(person.get("emails")), values(person.get("phones"))):
                    return person
            cursor = additional_data(body).get("next_cursor")
            if not cursor or not isinstance(cursor, (str, int)):
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
        what = f"pipedrive POST {PERSONS}"
        try:
            body = self._write_with_our_id("POST", PERSONS, lambda key: {
                **payload, "custom_fields": {key: our_value(contact)}})
            return created_id(envelope_data(body, what, dict, written=True), what, "person")
        except TransientError:
            self._maybe_created.add(contact.contact_id)
            raise

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
