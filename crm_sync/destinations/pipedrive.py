"""Pipedrive: the person found (or created) by email and phone, each interaction as a note, leads as leads.

Idempotency: Pipedrive has neither an idempotency key nor an upsert, and its search index lags behind writes.
- Persons: search (`exact_match` by email, then by phone); when search finds nothing, the persons changed in the last
  `recent_window_seconds` are listed (a database read, not search) and matched by email and phone, so a person that
  an earlier attempt created a moment ago is found even though search cannot see it yet. Only then is one created.
- Leads carry our key in `origin_id` (settable on create, never changed after), and a retry lists the person's leads.
- Notes end with the marker `crm-ingest:<key>`; a retry lists the person's notes (newest first) before writing one.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
from pydantic import Field, SecretStr

from crm_sync.destinations.base import (
    ContactSnapshot,
    DeliveryError,
    DeliveryRequest,
    DestinationSettings,
    PermanentError,
    TransientError,
)
from crm_sync.destinations.content import display_name, has_marker, interaction_title, matches_person, note_html, \
    phone_digits, same_email, same_phone
from crm_sync.destinations.http import VendorApi, VendorDestination, json_or_none, retry_after_seconds

_PAGES = 5   # at most this many pages of a listing are read looking for our own write
_PAGE_SIZE = 500


class PipedriveSettings(DestinationSettings):
    base_url: str                          # https://<company>.pipedrive.com
    api_token: SecretStr
    create_leads: bool = True              # a `lead` interaction also becomes a Pipedrive lead
    owner_id: int | None = None
    # How far back the listing of recently changed persons looks; longer than Pipedrive's search lag.
    recent_window_seconds: float = Field(default=900.0, gt=0)


class PipedriveDestination(VendorDestination):
    kind = "pipedrive"
    settings_model = PipedriveSettings
    settings: PipedriveSettings

    def __init__(self, settings: PipedriveSettings, http: httpx.Client):
        super().__init__(settings, http)
        headers = {"x-api-token": settings.api_token.get_secret_value()}
        self.api = VendorApi(http, "pipedrive", settings.base_url, headers, classify=classify)

    # --- persons --------------------------------------------------------------------------------------------------

    def find(self, contact: ContactSnapshot) -> str | None:
        person = self._find_person(contact)
        return str(person["id"]) if person else None

    def upsert_contact(self, request: DeliveryRequest) -> str:
        contact = request.contact
        person = self._person(contact.record_id) if contact.record_id else None
        person = person or self._find_person(contact)
        if person is None:
            return self._create_person(contact)
        self._add_missing_values(contact, person)
        return str(person["id"])

    def _person(self, person_id: str) -> dict[str, Any] | None:
        response = self.api.request("GET", f"/api/v2/persons/{person_id}", accept=(404, 410))
        data = (json_or_none(response) or {}).get("data") if response.status_code == 200 else None
        return data if data and not data.get("is_deleted") else None

    def _find_person(self, contact: ContactSnapshot) -> dict[str, Any] | None:
        searches = [("email", email, True) for email in contact.emails[:2]]
        # Phones are stored as people typed them: search by the last digits, then compare the digits ourselves.
        searches += [("phone", phone_digits(phone)[-10:], False) for phone in contact.phones[:2]]
        for field, term, exact in searches:
            if len(term) < 2:
                continue
            body = self.api.json("GET", "/api/v2/persons/search", params={
                "term": term, "fields": field, "exact_match": str(exact).lower(), "limit": 10})
            for hit in ((body or {}).get("data") or {}).get("items") or []:
                item = hit.get("item") or {}
                if matches_person(contact, _values(item.get("emails")), _values(item.get("phones"))):
                    # A search hit lists values as bare strings: read the person to update it without loss.
                    return self._person(str(item["id"]))
        return self._recently_changed_person(contact) if (contact.emails or contact.phones) else None

    def _recently_changed_person(self, contact: ContactSnapshot) -> dict[str, Any] | None:
        since = datetime.now(timezone.utc) - timedelta(seconds=self.settings.recent_window_seconds)
        params: dict[str, Any] = {"updated_since": since.strftime("%Y-%m-%dT%H:%M:%SZ"), "sort_by": "update_time",
                                  "sort_direction": "desc", "limit": 500}
        for _ in range(_PAGES):
            body = self.api.json("GET", "/api/v2/persons", params=params) or {}
            for person in body.get("data") or []:
                if matches_person(contact, _values(person.get("emails")), _values(person.get("phones"))):
                    return person
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return None
            params["cursor"] = cursor
        return None

    def _create_person(self, contact: ContactSnapshot) -> str:
        payload: dict[str, Any] = {
            "name": display_name(contact),
            "emails": [{"value": e, "primary": i == 0, "label": "work"} for i, e in enumerate(contact.emails)],
            "phones": [{"value": p, "primary": i == 0, "label": "work"} for i, p in enumerate(contact.phones)],
        }
        if self.settings.owner_id:
            payload["owner_id"] = self.settings.owner_id
        return str(self.api.json("POST", "/api/v2/persons", json=payload)["data"]["id"])

    def _add_missing_values(self, contact: ContactSnapshot, person: dict[str, Any]) -> None:
        emails, phones = _entries(person.get("emails")), _entries(person.get("phones"))
        new_emails = [e for e in contact.emails if not any(same_email(e, x["value"]) for x in emails)]
        new_phones = [p for p in contact.phones if not any(same_phone(p, x["value"]) for x in phones)]
        changes = {}
        if new_emails:
            changes["emails"] = emails + [{"value": e, "primary": not emails and i == 0, "label": "work"}
                                          for i, e in enumerate(new_emails)]
        if new_phones:
            changes["phones"] = phones + [{"value": p, "primary": not phones and i == 0, "label": "work"}
                                          for i, p in enumerate(new_phones)]
        if changes:   # v2 PATCH replaces a list, so the existing entries are sent along
            self.api.json("PATCH", f"/api/v2/persons/{person['id']}", json=changes)

    # --- leads and notes ------------------------------------------------------------------------------------------

    def record_interaction(self, request: DeliveryRequest, contact_record_id: str) -> str | None:
        lead_id = None
        if self.settings.create_leads and request.interaction and request.interaction.kind == "lead":
            lead_id = self._lead(request, contact_record_id)
        note_id = self._note(request, contact_record_id, lead_id)
        return lead_id or note_id

    def record_url(self, contact_record_id: str) -> str | None:
        return f"{self.settings.base_url.rstrip('/')}/person/{contact_record_id}"

    def _lead(self, request: DeliveryRequest, person_id: str) -> str:
        key = request.idempotency_key
        if request.attempt > 1:
            for lead in self._pages("/api/v1/leads", {"person_id": person_id}, _leads_pagination):
                if lead.get("origin_id") == key:
                    return str(lead["id"])
        payload: dict[str, Any] = {"title": interaction_title(request.interaction, request.contact),
                                   "person_id": int(person_id), "origin_id": key}
        if self.settings.owner_id:
            payload["owner_id"] = self.settings.owner_id
        return str(self.api.json("POST", "/api/v1/leads", json=payload)["data"]["id"])

    def _note(self, request: DeliveryRequest, person_id: str, lead_id: str | None) -> str:
        key = request.idempotency_key
        if request.attempt > 1:
            for note in self._pages("/api/v1/notes", {"person_id": person_id, "sort": "add_time DESC"},
                                    _v1_pagination):
                if has_marker(note.get("content"), key):
                    return str(note["id"])
        payload: dict[str, Any] = {"content": note_html(request.interaction, request.contact, key),
                                   "person_id": int(person_id)}
        if lead_id:
            payload["lead_id"] = lead_id
        return str(self.api.json("POST", "/api/v1/notes", json=payload)["data"]["id"])

    def _pages(self, path: str, params: dict[str, Any], pagination: Callable[[dict[str, Any]], dict[str, Any]]
               ) -> list[dict[str, Any]]:
        """A v1 listing, page by page (start/limit), up to `_PAGES` pages; `pagination` finds where this endpoint
        says whether more pages follow."""
        items: list[dict[str, Any]] = []
        start = 0
        for _ in range(_PAGES):
            body = self.api.json("GET", path, params={**params, "start": start, "limit": _PAGE_SIZE}) or {}
            items += body.get("data") or []
            page = pagination(body)
            if not page.get("more_items_in_collection"):
                break
            start = page.get("next_start") or start + int(page.get("limit") or _PAGE_SIZE)
        return items


def classify(response: httpx.Response, what: str) -> DeliveryError | None:
    body = json_or_none(response)
    body = body if isinstance(body, dict) else {}
    code, message = str(body.get("code") or ""), str(body.get("error") or "")
    detail = f"{what}: HTTP {response.status_code}: {message or response.text[:300]}"
    if response.status_code == 403 and code.startswith("feature_capping"):
        return PermanentError("plan_limit", f"{detail} ({code})", status=403)
    if response.status_code == 429:
        reset = response.headers.get("x-ratelimit-reset")
        wait = retry_after_seconds(response) or (float(reset) if reset and reset.isdigit() else 2.0)
        return TransientError("rate_limit", detail, wait, 429)
    return None


def _v1_pagination(body: dict[str, Any]) -> dict[str, Any]:
    """Most v1 listings (notes): `additional_data.pagination` = {start, limit, more_items_in_collection, next_start}."""
    return (body.get("additional_data") or {}).get("pagination") or {}


def _leads_pagination(body: dict[str, Any]) -> dict[str, Any]:
    """`GET /v1/leads` puts {start, limit, more_items_in_collection} in `additional_data` itself, without next_start."""
    return body.get("additional_data") or {}


def _values(items: Any) -> list[str]:
    """Search hits list plain strings; person records list `{value, primary, label}`."""
    return [item["value"] if isinstance(item, dict) else str(item) for item in items or [] if item]


def _entries(items: Any) -> list[dict[str, Any]]:
    return [{"value": item["value"], "primary": bool(item.get("primary")), "label": item.get("label") or "work"}
            for item in items or [] if isinstance(item, dict) and item.get("value")]
