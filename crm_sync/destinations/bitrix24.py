"""Bitrix24 through an incoming webhook: the person as a contact, each interaction as a lead linked to it.

Idempotency: Bitrix24 has no idempotency key and no upsert, but every CRM entity has `ORIGINATOR_ID` / `ORIGIN_ID`
"for linking to an external source". Our contacts carry (`originator_id`, "contact:<our id>") and our leads carry
(`originator_id`, <idempotency key>). `crm.contact.list` / `crm.lead.list` filtered on them are plain database reads,
so a retry finds what an earlier attempt wrote even if its response was lost and the duplicate index still lags.
A person someone else created is found by `crm.duplicate.findbycomm` (email, then phone).
The webhook URL holds the secret code, so messages name the REST method only, never the URL, and the code is masked
wherever an answer quoted in a message echoes it.
A call's answer must hold `result` of the method's shape (a list for `crm.*.list`, a record for `crm.contact.get`, a
positive id for `crm.*.add`); anything else is a `crm_answer` error, never "nothing found" nor an id like "None".
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from crm_sync.destinations.base import (
    ContactSnapshot,
    DeliveryError,
    DeliveryRequest,
    DestinationSettings,
    PermanentError,
    TransientError,
    crm_id,
)
from crm_sync.destinations.content import display_name, first_and_last, interaction_title, note_html, same_email, \
    same_phone
from crm_sync.destinations.http import VendorApi, VendorDestination, answer_error, answer_member, body_excerpt, \
    json_or_none, retry_after_seconds

_AUTH_ERRORS = {"INVALID_CREDENTIALS", "NO_AUTH_FOUND", "WRONG_AUTH_TYPE", "insufficient_scope", "ACCESS_DENIED",
                "expired_token", "invalid_token", "user_access_error", "authorization_error"}
_UNAVAILABLE = {"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER", "PORTAL_DELETED_OR_MOVED_TEMPORARILY"}
_WRITES = (".add", ".update")   # methods that write: a lost or unreadable answer may follow a write
_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


class Bitrix24Settings(DestinationSettings):
    webhook_url: SecretStr = Field(description="an incoming webhook",
                                   examples=["https://<portal>/rest/<user id>/<code>/"])
    originator_id: str = "crm-ingest"      # ORIGINATOR_ID of everything we create
    create_leads: bool = True              # each interaction becomes a lead linked to the contact
    lead_status_id: str = "NEW"
    lead_source_id: str | None = None      # e.g. "WEB", "CALL"; see crm.status.list ENTITY_ID=SOURCE
    assigned_by_id: int | None = None

    @field_validator("webhook_url")
    @classmethod
    def _incoming_webhook(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        segments = [s for s in parts.path.split("/") if s]
        if parts.scheme not in ("http", "https") or len(segments) < 3 or segments[-3] != "rest" \
                or not segments[-2].isdigit():
            raise ValueError("webhook_url must be an incoming webhook URL: https://<portal>/rest/<user id>/<code>/")
        return value


class Bitrix24Destination(VendorDestination):
    kind = "bitrix24"
    settings_model = Bitrix24Settings
    settings: Bitrix24Settings

    def __init__(self, settings: Bitrix24Settings, http: httpx.Client):
        super().__init__(settings, http)
        url = settings.webhook_url.get_secret_value()
        code = [segment for segment in urlsplit(url).path.split("/") if segment][-1]
        self.api = VendorApi(http, "bitrix24", url, classify=classify, secrets=[code])

    # --- the interface --------------------------------------------------------------------------------------------

    def find(self, contact: ContactSnapshot) -> str | None:
        ours = self._list("crm.contact.list", self._contact_origin(contact))
        if ours:
            return ours
        for kind, values in (("EMAIL", contact.emails), ("PHONE", contact.phones)):
            if values:
                found = self.call("crm.duplicate.findbycomm", {"type": kind, "values": list(values[:20]),
                                                                "entity_type": "CONTACT"}, expect=(dict, list))
                ids = _duplicate_ids(found)
                if ids:
                    return min(ids, key=int)   # the oldest of several duplicates
        return None

    def upsert_contact(self, request: DeliveryRequest) -> str:
        contact = request.contact
        if contact.record_id and self._refresh(contact, contact.record_id):
            return contact.record_id
        found = self.find(contact)
        if found and self._refresh(contact, found):
            return found
        return self._add_contact(contact)

    def record_interaction(self, request: DeliveryRequest, contact_record_id: str) -> str | None:
        if not self.settings.create_leads or request.interaction is None:
            return None
        origin = {"ORIGINATOR_ID": self.settings.originator_id, "ORIGIN_ID": request.idempotency_key}
        if request.attempt > 1:
            earlier = self._list("crm.lead.list", origin)
            if earlier:
                return earlier
        return self._added("crm.lead.add", {"fields": {**self._lead_fields(request, contact_record_id), **origin},
                                             "params": {"REGISTER_SONET_EVENT": "Y"}})

    def record_url(self, contact_record_id: str) -> str | None:
        portal = urlsplit(self.settings.webhook_url.get_secret_value())
        return f"{portal.scheme}://{portal.netloc}/crm/contact/details/{contact_record_id}/"

    # --- REST -----------------------------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any], missing_ok: bool = False,
             expect: type | tuple[type, ...] = object) -> Any:
        """The method's `result`, of type `expect`; None for a missing record when `missing_ok` (Bitrix24 says 400
        "Not found")."""
        response = self.api.request("POST", f"/{method}", json=params, accept=(400,) if missing_ok else ())
        body = json_or_none(response)
        if response.status_code == 400 and isinstance(body, dict) and \
                "not found" in str(body.get("error_description", "")).lower():
            return None
        written = method.endswith(_WRITES)
        if response.status_code < 400 and not isinstance(body, dict):
            # Not Bitrix24's answer but a page in its place (the portal updating, a proxy's error page): the call's
            # fate is unknown and the portal is usually back soon. The page is not quoted: it may echo the URL,
            # which holds the webhook code.
            raise TransientError("crm_unavailable", f"bitrix24 {method}: answered HTTP {response.status_code} with "
                                 f"a body that is not a JSON object ({response.headers.get('content-type', '')})",
                                 retry_after_seconds(response), response.status_code, outcome_unknown=written)
        if response.status_code >= 400 or body.get("error"):   # "error": "" beside a result is no error
            raise self.api.masked(classify(response, f"bitrix24 {method}") or PermanentError(
                "validation", f"bitrix24 {method}: {body_excerpt(response)}", status=response.status_code))
        return answer_member(body, "result", expect, f"bitrix24 {method}", written=written)

    def _added(self, method: str, params: dict[str, Any]) -> str:
        """The id of the record a `crm.*.add` made: without one the write is not confirmed (the retry's look-up by
        ORIGIN_ID finds it if it landed)."""
        record = crm_id(self.call(method, params))
        if record is None:
            raise answer_error(f"bitrix24 {method}", "answered without the new record's id", written=True)
        return record

    def _list(self, method: str, origin: dict[str, str]) -> str | None:
        rows = self.call(method, {"filter": origin, "select": ["ID"], "order": {"ID": "ASC"}}, expect=list)
        if not rows:
            return None
        record = crm_id(rows[0].get("ID")) if isinstance(rows[0], dict) else None
        if record is None:
            raise answer_error(f"bitrix24 {method}", f"answered a row without its ID: {str(rows[0])[:100]}",
                               written=False)
        return record

    # --- contacts -------------------------------------------------------------------------------------------------

    def _contact_origin(self, contact: ContactSnapshot) -> dict[str, str]:
        return {"ORIGINATOR_ID": self.settings.originator_id, "ORIGIN_ID": f"contact:{contact.contact_id}"}

    def _add_contact(self, contact: ContactSnapshot) -> str:
        first, last = first_and_last(contact)
        fields: dict[str, Any] = {
            "NAME": first or display_name(contact), "LAST_NAME": last or "", "OPENED": "Y",
            "EMAIL": [{"VALUE": e, "VALUE_TYPE": "WORK"} for e in contact.emails],
            "PHONE": [{"VALUE": p, "VALUE_TYPE": "WORK"} for p in contact.phones],
            **self._contact_origin(contact),
        }
        if self.settings.assigned_by_id:
            fields["ASSIGNED_BY_ID"] = self.settings.assigned_by_id
        if self.settings.lead_source_id:
            fields["SOURCE_ID"] = self.settings.lead_source_id
        return self._added("crm.contact.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}})

    def _refresh(self, contact: ContactSnapshot, record_id: str) -> bool:
        """Add the person's new emails and phones to the record; False when it was deleted in Bitrix24."""
        current = self.call("crm.contact.get", {"id": record_id}, missing_ok=True, expect=dict)
        if current is None:
            return False
        self._add_missing_values(contact, record_id, current)
        return True

    def _add_missing_values(self, contact: ContactSnapshot, record_id: str, current: dict[str, Any]) -> None:
        """New emails and phones are added (multi-field items without an ID are appended), nothing is replaced."""
        emails, phones = (_multi_values(current.get(name)) for name in ("EMAIL", "PHONE"))
        fields = {
            "EMAIL": [{"VALUE": e, "VALUE_TYPE": "WORK"} for e in contact.emails
                      if not any(same_email(e, known) for known in emails)],
            "PHONE": [{"VALUE": p, "VALUE_TYPE": "WORK"} for p in contact.phones
                      if not any(same_phone(p, known) for known in phones)],
        }
        fields = {name: values for name, values in fields.items() if values}
        if fields:
            self.call("crm.contact.update", {"id": record_id, "fields": fields})

    # --- leads ----------------------------------------------------------------------------------------------------

    def _lead_fields(self, request: DeliveryRequest, contact_record_id: str) -> dict[str, Any]:
        interaction, contact = request.interaction, request.contact
        first, last = first_and_last(contact)
        fields: dict[str, Any] = {
            "TITLE": interaction_title(interaction, contact)[:255], "NAME": first or display_name(contact),
            "LAST_NAME": last or "", "STATUS_ID": self.settings.lead_status_id, "OPENED": "Y",
            "CONTACT_ID": contact_record_id, "SOURCE_DESCRIPTION": f"{interaction.provider} / {interaction.source}",
            "COMMENTS": note_html(interaction, contact, request.idempotency_key),
        }
        fields.update({name.upper(): value for name, value in interaction.utm.items() if name in _UTM})
        if self.settings.lead_source_id:
            fields["SOURCE_ID"] = self.settings.lead_source_id
        if self.settings.assigned_by_id:
            fields["ASSIGNED_BY_ID"] = self.settings.assigned_by_id
        return fields


def _duplicate_ids(found: dict[str, Any] | list[Any]) -> list[str]:
    """The contact ids `crm.duplicate.findbycomm` answered: `{"CONTACT": [ids]}`, or `[]` for none."""
    if isinstance(found, list):   # a list of anything is no answer of this method
        ids: list[str | None] = [None] * len(found)
    else:
        listed = found.get("CONTACT", [])
        ids = [crm_id(i) for i in listed] if isinstance(listed, list) else [None]
    if not all(i and i.isdigit() for i in ids):
        raise answer_error("bitrix24 crm.duplicate.findbycomm", f"answered other than contact ids: {str(found)[:100]}",
                           written=False)
    return ids   # type: ignore[return-value]


def _multi_values(items: Any) -> list[str]:
    """The values of a multi-field (EMAIL, PHONE) as a record holds them."""
    items = items if isinstance(items, list) else []
    return [str(item.get("VALUE")) for item in items if isinstance(item, dict) and item.get("VALUE")]


def classify(response: httpx.Response, what: str) -> DeliveryError | None:
    body = json_or_none(response)
    body = body if isinstance(body, dict) else {}
    code, description = str(body.get("error") or ""), str(body.get("error_description") or "")
    detail = f"{what}: HTTP {response.status_code} {code}: {description}"
    if code == "QUERY_LIMIT_EXCEEDED":
        # Leaky bucket: the counter drains by 2 (5 on Enterprise) requests a second.
        return TransientError("rate_limit", detail, retry_after_seconds(response) or 1.0, response.status_code)
    if code == "OPERATION_TIME_LIMIT":
        # This method alone is blocked until its summed run time over 10 minutes falls under the limit.
        return TransientError("rate_limit", detail, retry_after_seconds(response) or 60.0, response.status_code)
    if code == "OVERLOAD_LIMIT":
        return PermanentError("rate_limit", f"{detail} (the portal's administrator blocked REST calls)",
                              status=response.status_code)
    if code in _AUTH_ERRORS:
        return PermanentError("auth", detail, status=response.status_code)
    if code in _UNAVAILABLE:
        return TransientError("crm_unavailable", detail, retry_after_seconds(response), response.status_code)
    if code == "PAYMENT_REQUIRED" or "tariff" in description.lower():
        return PermanentError("plan_limit", detail, status=response.status_code)
    if response.status_code == 400 or (response.status_code == 200 and code):
        return PermanentError("validation", detail, status=response.status_code)
    return None
