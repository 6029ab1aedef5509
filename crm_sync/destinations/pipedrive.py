"""Pipedrive: the person found (or created) by our contact id, email and phone, each interaction as a note, leads as
leads.

Idempotency: Pipedrive has neither an idempotency key nor an upsert, and its search index lags behind writes.
- Persons carry our contact id in a person field, created on first use; a retry looks for it in the persons changed
  lately (a listing, which sees a person created a moment ago) and by search, before searching by email and phone.
  See pipedrive_persons.
- Leads carry our key in `origin_id` (settable on create, never changed after), and a retry lists the person's leads.
- Notes end with the marker `crm-ingest:<key>`; a retry lists the person's notes (newest first) before writing one.
Searches respect Pipedrive's own Search API limit through the drain's rate gate (see pipedrive_api).
"""
from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field, SecretStr, field_validator

from crm_sync.destinations.base import ContactSnapshot, DeliveryRequest, DestinationSettings, RateLimit, crm_id
from crm_sync.destinations.content import has_marker, interaction_title, note_html
from crm_sync.destinations.http import VendorApi, VendorDestination
from crm_sync.destinations.pipedrive_api import SearchLimitedClient, classify, created_id, data, flat_pagination, \
    nested_pagination, v1_pages
from crm_sync.destinations.pipedrive_contact_field import ContactIdField
from crm_sync.destinations.pipedrive_persons import PersonDirectory

class PipedriveSettings(DestinationSettings):
    base_url: str                          # https://<company>.pipedrive.com
    api_token: SecretStr = Field(description="a Pipedrive API token (sent as x-api-token)")
    create_leads: bool = True              # a `lead` interaction also becomes a Pipedrive lead
    owner_id: int | None = None
    # How far back the listing of recently changed persons looks; longer than Pipedrive's search lag.
    recent_window_seconds: float = Field(default=900.0, gt=0)
    # The person field (a text field, found by this name or created) that holds our contact id.
    contact_id_field: str = Field(default="crm-ingest contact id", min_length=1, max_length=255)
    # Pipedrive's Search API limit, per token on every plan, on top of `rate` (which counts searches too).
    search_rate: str = "10/2s"

    @field_validator("search_rate")
    @classmethod
    def _search_rate_is_parseable(cls, value: str) -> str:
        RateLimit.parse(value)
        return value


class PipedriveDestination(VendorDestination):
    kind = "pipedrive"
    settings_model = PipedriveSettings
    settings: PipedriveSettings

    def __init__(self, settings: PipedriveSettings, http: httpx.Client):
        super().__init__(settings, http)
        headers = {"x-api-token": settings.api_token.get_secret_value()}
        client = SearchLimitedClient(http, RateLimit.parse(settings.search_rate))
        self.api = VendorApi(client, "pipedrive", settings.base_url, headers, classify=classify,
                             secrets=[settings.api_token.get_secret_value()])
        contact_field = ContactIdField(self.api, settings.base_url, settings.contact_id_field)
        self.persons = PersonDirectory(self.api, contact_field, settings.recent_window_seconds, settings.owner_id)

    # --- persons --------------------------------------------------------------------------------------------------

    def find(self, contact: ContactSnapshot) -> str | None:
        person = self.persons.find(contact, after_an_attempt=True)
        return crm_id(person["id"]) if person else None

    def upsert_contact(self, request: DeliveryRequest) -> str:
        contact = request.contact
        person = self.persons.read(contact.record_id) if contact.record_id else None
        person = person or self.persons.find(contact, after_an_attempt=request.attempt > 1)
        if person is None:
            return self.persons.create(contact)
        self.persons.complete(contact, person)
        return crm_id(person["id"])

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
            for lead in v1_pages(self.api, "/api/v1/leads", {"person_id": person_id}, flat_pagination):
                if lead.get("origin_id") == key:
                    return crm_id(lead["id"])
        payload: dict[str, Any] = {"title": interaction_title(request.interaction, request.contact),
                                   "person_id": int(person_id), "origin_id": key}
        if self.settings.owner_id:
            payload["owner_id"] = self.settings.owner_id
        return created_id(data(self.api, "POST", "/api/v1/leads", json=payload), "pipedrive POST /api/v1/leads",
                          "lead")

    def _note(self, request: DeliveryRequest, person_id: str, lead_id: str | None) -> str:
        key = request.idempotency_key
        if request.attempt > 1:
            for note in v1_pages(self.api, "/api/v1/notes", {"person_id": person_id, "sort": "add_time DESC"},
                                 nested_pagination):
                if has_marker(note.get("content"), key):
                    return crm_id(note["id"])
        payload: dict[str, Any] = {"content": note_html(request.interaction, request.contact, key),
                                   "person_id": int(person_id)}
        if lead_id:
            payload["lead_id"] = lead_id
        return created_id(data(self.api, "POST", "/api/v1/notes", json=payload), "pipedrive POST /api/v1/notes",
                          "note")
