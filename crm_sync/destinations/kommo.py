"""Kommo (amoCRM) API v4: each interaction as a lead linked to the person's contact, the conversation as its note.

Writes: `POST /api/v4/leads/complex` creates up to 50 leads in one call, each with its contact (new ones embedded,
known ones by id), then `POST /api/v4/leads/notes` adds all their notes in one more call: under a burst a batch of
new people costs their contact searches plus two calls.
Idempotency: every lead carries our delivery key in a text custom field on leads (`key_field_id`, created once by the
Kommo admin), and `request_id` = our key maps the batch's answers back. A retry (attempt > 1) looks for its lead by
that field among the leads created lately (a listing, which sees a lead created a moment ago, unlike `?query=`), then
by search, and adds the note only if the lead has none with our marker; it also looks for the leads of the
interaction's earlier revisions (`…:r1` … `…:r<n-1>`: an attempt whose answer was lost may have written one before the
interaction changed) and takes the person's contact from them. A person is found by email and phone search, then among
the contacts changed lately; every contact we create carries our contact id (kommo_contact_field), by which a retry
also looks for it. So a contact created by a lost attempt is not created again, even for a person without email/phone.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
from pydantic import Field, SecretStr

from crm_sync.delivery_keys import earlier_revision_keys
from crm_sync.destinations.base import (
    ContactSnapshot,
    DeliveryError,
    DeliveryRequest,
    DeliveryResult,
    DestinationSettings,
)
from crm_sync.destinations.batch_writes import write_isolating_invalid
from crm_sync.destinations.content import display_name, first_and_last, has_marker, interaction_title, note_text, \
    same_email, same_phone
from crm_sync.destinations.http import VendorApi, VendorDestination, share_calls
from crm_sync.destinations.kommo_answers import complex_created, created_contacts, kommo_id, note_ids
from crm_sync.destinations.kommo_contact_field import ContactIdField, our_entry
from crm_sync.destinations.kommo_errors import classify
from crm_sync.destinations.kommo_lookup import KommoLookup, field_entries, multitext

Outcome = DeliveryResult | DeliveryError
COMPLEX = "/api/v4/leads/complex"
EARLIER_SEARCHES = 5   # earlier revisions searched for (all of them are matched in the listing of recent leads)


class KommoSettings(DestinationSettings):
    base_url: str                          # https://<subdomain>.kommo.com (or .amocrm.ru)
    token: SecretStr = Field(description="the long-lived token of a Kommo private integration")
    key_field_id: int                      # a text custom field on leads that holds our delivery key
    pipeline_id: int | None = None
    status_id: int | None = None
    responsible_user_id: int | None = None
    recent_window_seconds: float = Field(default=900.0, gt=0)
    batch_size: int = Field(default=50, ge=1, le=50)


class KommoDestination(VendorDestination):
    kind = "kommo"
    settings_model = KommoSettings
    settings: KommoSettings

    def __init__(self, settings: KommoSettings, http: httpx.Client):
        super().__init__(settings, http)
        headers = {"authorization": f"Bearer {settings.token.get_secret_value()}"}
        self.api = VendorApi(http, "kommo", settings.base_url, headers, classify=classify,
                             secrets=[settings.token.get_secret_value()])
        self.lookup = KommoLookup(self.api, settings.key_field_id, settings.recent_window_seconds)
        self.contact_field = ContactIdField(self.api)

    # --- the interface --------------------------------------------------------------------------------------------

    def find(self, contact: ContactSnapshot) -> str | None:
        found = self.lookup.find_contacts([contact]).get(contact.contact_id)
        if isinstance(found, DeliveryError):
            raise found
        return kommo_id(found["id"]) if found else None

    def upsert_contact(self, request: DeliveryRequest) -> str:
        known, failed = self._resolve_contacts([request.contact], {request.contact.contact_id}
                                               if request.attempt > 1 else set())
        if failed:
            raise failed[request.contact.contact_id]
        return known.get(request.contact.contact_id) or self._create_contacts([request.contact])[0]

    def record_interaction(self, request: DeliveryRequest, contact_record_id: str) -> str | None:
        outcome = self._deliver_chunk([request], {request.contact.contact_id: contact_record_id})[0]
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome.interaction_record_id

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        (outcome,) = self.deliver_batch([request])
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome

    def deliver_batch(self, requests: list[DeliveryRequest]) -> list[Outcome]:
        out: list[Outcome] = []
        for start in range(0, len(requests), self.settings.batch_size):
            before = self.api.calls
            chunk = requests[start:start + self.settings.batch_size]
            unique: dict[str, DeliveryRequest] = {}
            for request in chunk:   # the same delivery twice in a batch is written once
                unique.setdefault(request.idempotency_key, request)
            try:
                by_key = dict(zip(unique, self._deliver_chunk(list(unique.values()))))
            except DeliveryError as exc:
                by_key = {key: exc for key in unique}
            out += share_calls([by_key[r.idempotency_key] for r in chunk], self.api.calls - before)
        return out

    def record_url(self, contact_record_id: str) -> str | None:
        return f"{self.settings.base_url.rstrip('/')}/contacts/detail/{contact_record_id}"

    # --- one batch ------------------------------------------------------------------------------------------------

    def _deliver_chunk(self, requests: list[DeliveryRequest], known: dict[int, str] | None = None) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        retried = [r for r in requests if r.attempt > 1 and r.interaction]
        # An unlinked person's contact may come from a lead an earlier revision's lost attempt wrote.
        older = {r.idempotency_key: earlier_revision_keys(r.idempotency_key) for r in retried if not r.contact.record_id}
        searched = {r.idempotency_key for r in retried} | {k for ks in older.values() for k in ks[:EARLIER_SEARCHES]}
        leads = self.lookup.find_leads(sorted(searched | {k for ks in older.values() for k in ks}), searched)
        from_earlier: dict[int, str] = {}
        for index, request in enumerate(requests):
            found = leads.get(request.idempotency_key)
            if found is not None:
                outcomes[index] = found if isinstance(found, DeliveryError) else self._finish_earlier(request, found)
            for lead in [leads[k] for k in older.get(request.idempotency_key, ()) if k in leads]:
                if isinstance(lead, DeliveryError):   # unsure whether an earlier write made a contact: not now
                    outcomes.setdefault(index, lead)
                elif self.lookup.main_contact_id(lead):
                    from_earlier.setdefault(request.contact.contact_id, self.lookup.main_contact_id(lead))
        todo = [i for i in range(len(requests)) if i not in outcomes]
        if known is None:
            known, failed = self._resolve_contacts([requests[i].contact for i in todo],
                                                   {r.contact.contact_id for r in requests if r.attempt > 1},
                                                   from_earlier)
            outcomes.update({i: failed[requests[i].contact.contact_id] for i in todo
                             if requests[i].contact.contact_id in failed})
            todo = [i for i in todo if i not in outcomes]
        known = dict(known)
        lonely = [requests[i].contact for i in todo if not requests[i].interaction]
        unknown = list({c.contact_id: c for c in lonely if c.contact_id not in known}.values())
        known.update({c.contact_id: cid for c, cid in zip(unknown, self._create_contacts(unknown))})
        outcomes.update(self._create_leads(requests, [i for i in todo if requests[i].interaction], known))
        for index in todo:
            if index not in outcomes:   # a delivery without an interaction: the contact was all there was to write
                outcomes[index] = self._result(known[requests[index].contact.contact_id], None)
        return [outcomes[i] for i in range(len(requests))]

    def _create_leads(self, requests: list[DeliveryRequest], indexes: list[int], known: dict[int, str]
                      ) -> dict[int, Outcome]:
        outcomes: dict[int, Outcome] = {}
        leads: dict[int, tuple[str, str]] = {}
        while indexes:
            # A new person is embedded once; their other deliveries wait for the contact id that call returns.
            this_round, deferred, embedded = [], [], set()
            for index in indexes:
                person = requests[index].contact.contact_id
                (deferred if person not in known and person in embedded else this_round).append(index)
                embedded.add(person)
            created = write_isolating_invalid(
                this_round, lambda i: requests[i].idempotency_key,
                lambda round_: self._complex([requests[i] for i in round_], known),
                lambda i: self._complex([requests[i]], known)[requests[i].idempotency_key])
            for index in this_round:
                request = requests[index]
                written = created[request.idempotency_key]
                if isinstance(written, DeliveryError):
                    outcomes[index] = written
                    continue
                lead_id, contact_id = written
                known.setdefault(request.contact.contact_id, contact_id)
                leads[index] = (lead_id, contact_id)
            if deferred and not any(i in leads for i in this_round):   # nothing written: the rest waits on it
                outcomes.update({i: outcomes[this_round[0]] for i in deferred})
                break
            indexes = deferred
        notes = self._add_notes([(requests[i], lead_id) for i, (lead_id, _) in leads.items()])
        for index, (lead_id, contact_id) in leads.items():
            note = notes[requests[index].idempotency_key]
            outcomes[index] = note if isinstance(note, DeliveryError) else self._result(contact_id, lead_id)
        return outcomes

    def _finish_earlier(self, request: DeliveryRequest, lead: dict[str, Any]) -> Outcome:
        """An earlier attempt created the lead: add its note unless that attempt did so too."""
        lead_id, key = kommo_id(lead["id"]), request.idempotency_key
        contact_id = self.lookup.main_contact_id(lead) or request.contact.record_id
        try:
            noted = self.lookup.lead_has_note(lead_id, lambda text: has_marker(text, key))
        except DeliveryError as exc:
            return exc
        if not noted:
            note = self._add_notes([(request, lead_id)])[key]
            if isinstance(note, DeliveryError):
                return note
        return self._result(contact_id, lead_id)

    def _result(self, contact_id: str | None, lead_id: str | None) -> DeliveryResult:
        return DeliveryResult(contact_id, lead_id, self.record_url(contact_id) if contact_id else None)

    # --- writes ---------------------------------------------------------------------------------------------------

    def _complex(self, requests: list[DeliveryRequest], known: dict[int, str]) -> dict[str, tuple[str, str]]:
        body = [self._lead(r, known.get(r.contact.contact_id)) for r in requests]
        answer = self.contact_field.write(lambda: self.api.json("POST", COMPLEX, expect=list, json=body),
                                          carries=any(r.contact.contact_id not in known for r in requests))
        return complex_created(answer, requests, known, f"kommo POST {COMPLEX}")

    def _lead(self, request: DeliveryRequest, contact_record_id: str | None) -> dict[str, Any]:
        contact = request.contact
        lead: dict[str, Any] = {
            "name": interaction_title(request.interaction, contact)[:255],
            "custom_fields_values": [{"field_id": self.settings.key_field_id,
                                      "values": [{"value": request.idempotency_key}]}],
            "_embedded": {"contacts": [{"id": int(contact_record_id)} if contact_record_id else
                                       self._new_contact(contact)],
                          "tags": [{"name": request.interaction.provider}]},
            "request_id": request.idempotency_key,
        }
        for name in ("pipeline_id", "status_id", "responsible_user_id"):
            if getattr(self.settings, name):
                lead[name] = getattr(self.settings, name)
        return lead

    def _new_contact(self, contact: ContactSnapshot) -> dict[str, Any]:
        first, last = first_and_last(contact)
        fields = [multitext(code, list(values)) for code, values in (("EMAIL", contact.emails),
                                                                     ("PHONE", contact.phones)) if values]
        entity: dict[str, Any] = {"name": display_name(contact), "first_name": first or "", "last_name": last or "",
                                  "custom_fields_values": [*fields, our_entry(contact)]}
        if self.settings.responsible_user_id:
            entity["responsible_user_id"] = self.settings.responsible_user_id
        return entity

    def _create_contacts(self, contacts: list[ContactSnapshot]) -> list[str]:
        if not contacts:
            return []
        body = [{**self._new_contact(c), "request_id": str(c.contact_id)} for c in contacts]
        answer = self.contact_field.write(lambda: self.api.json("POST", "/api/v4/contacts", json=body))
        return created_contacts(answer, contacts, "kommo POST /api/v4/contacts")

    def _add_notes(self, items: list[tuple[DeliveryRequest, str]]) -> dict[str, str | DeliveryError]:
        if not items:
            return {}
        body = [{"entity_id": int(lead_id), "note_type": "common", "request_id": request.idempotency_key,
                 "params": {"text": note_text(request.interaction, request.contact, request.idempotency_key,
                                              max_chars=20_000)}} for request, lead_id in items]
        keys = [request.idempotency_key for request, _ in items]
        try:
            answer = self.api.json("POST", "/api/v4/leads/notes", json=body)
        except DeliveryError as exc:
            return {key: exc for key in keys}
        return note_ids(answer, keys, "kommo POST /api/v4/leads/notes")

    # --- contacts -------------------------------------------------------------------------------------------------

    def _resolve_contacts(self, contacts: list[ContactSnapshot], retried: set[int] = frozenset(),
                          from_earlier: dict[int, str] | None = None
                          ) -> tuple[dict[int, str], dict[int, DeliveryError]]:
        """Kommo contact id per person found (the linked one if it still exists, else the one of an earlier
        revision's lead, else by email/phone, or for a person in `retried` by our contact id too), and the lookup
        error of each person whose search failed."""
        earlier = from_earlier or {}
        people = [c if c.record_id or c.contact_id not in earlier else replace(c, record_id=earlier[c.contact_id])
                  for c in {c.contact_id: c for c in contacts}.values()]
        linked = self.lookup.contacts_by_id(sorted({c.record_id for c in people if c.record_id}))
        entities: dict[int, Any] = {c.contact_id: linked[c.record_id] for c in people if c.record_id in linked}
        entities.update(self.lookup.find_contacts([c for c in people if c.contact_id not in entities], retried))
        failed = {person: e for person, e in entities.items() if isinstance(e, DeliveryError)}
        found = [(c, entities[c.contact_id]) for c in people if c.contact_id in entities and c.contact_id not in failed]
        failed.update(self._add_missing_values(found))
        return {contact.contact_id: kommo_id(entity["id"]) for contact, entity in found
                if contact.contact_id not in failed}, failed

    def _add_missing_values(self, pairs: list[tuple[ContactSnapshot, dict[str, Any]]]) -> dict[int, DeliveryError]:
        """New emails and phones are added to what Kommo has (PATCH replaces a field's list, so both are sent); the
        error of each person whose change failed. A PATCH refused as invalid is sent again person by person, so
        that only the refused person's deliveries fail."""
        changes: dict[int, dict[str, Any]] = {}
        for contact, entity in pairs:
            fields = []
            for code, mine, same in (("EMAIL", contact.emails, same_email), ("PHONE", contact.phones, same_phone)):
                theirs = field_entries(entity, code=code)
                new = [value for value in mine if not any(same(value, str(known["value"])) for known in theirs)]
                if new:
                    fields.append(multitext(code, new, existing=theirs))
            if fields:
                changes[contact.contact_id] = {"id": int(entity["id"]), "custom_fields_values": fields}

        def patch(people: list[int]) -> dict[int, None]:
            self.api.json("PATCH", "/api/v4/contacts", json=[changes[person] for person in people])
            return dict.fromkeys(people)

        written = write_isolating_invalid(list(changes), lambda person: person, patch,
                                          lambda person: patch([person])[person]) if changes else {}
        return {person: error for person, error in written.items() if isinstance(error, DeliveryError)}
