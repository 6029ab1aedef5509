"""Generic webhook: the canonical contact and interaction as a JSON POST, signed per the Standard Webhooks spec.

Headers (https://www.standardwebhooks.com/): `webhook-id` is the delivery's idempotency key, the same on every attempt
and replay, so the receiver deduplicates by it; `webhook-timestamp` is this attempt's time in Unix seconds;
`webhook-signature` is `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed by the base64-decoded part of the
`whsec_…` secret. The receiver may answer `{"record_id": …, "record_url": …}` to link its record to our contact; an id
that is no record id (see base.crm_id: null, 0, false, an object, an over-long string) or a URL that is no web page
is ignored, as an answer without them is.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from crm_sync.destinations.base import (
    ContactSnapshot,
    DeliveryRequest,
    DeliveryResult,
    DestinationSettings,
    InteractionSnapshot,
    PermanentError,
    crm_id,
)
from crm_sync.destinations.http import VendorApi, VendorDestination, json_or_none

SECRET_PREFIX = "whsec_"


class WebhookSettings(DestinationSettings):
    url: str = Field(description="where each contact and interaction is POSTed", examples=["https://…"])
    secret: SecretStr = Field(description="which signs every request",
                              examples=["whsec_<base64 of 24-64 random bytes>"])

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an absolute http:// or https:// URL")
        return value

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr) -> SecretStr:
        signing_key(value)
        return value


def signing_key(secret: SecretStr) -> bytes:
    """The HMAC key: the base64 part of `whsec_<base64>`, 24 to 64 bytes as the spec recommends."""
    text = secret.get_secret_value().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret must be whsec_ followed by base64 (generate one with: "
                         "python -c \"import base64,os;print('whsec_'+base64.b64encode(os.urandom(32)).decode())\")")
    if not 24 <= len(key) <= 64:
        raise ValueError(f"secret must decode to 24-64 bytes, not {len(key)}")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def event_payload(request: DeliveryRequest) -> dict[str, Any]:
    interaction = request.interaction
    occurred = interaction.occurred_at if interaction and interaction.occurred_at else None
    return {
        "type": "interaction.recorded" if interaction else "contact.updated",
        "timestamp": _iso(occurred or datetime.now(timezone.utc)),
        "data": {
            "idempotency_key": request.idempotency_key,
            "contact": _contact(request.contact),
            "interaction": _interaction(interaction) if interaction else None,
        },
    }


class WebhookDestination(VendorDestination):
    kind = "webhook"
    settings_model = WebhookSettings
    settings: WebhookSettings

    def __init__(self, settings: WebhookSettings, http: httpx.Client):
        super().__init__(settings, http)
        self.key = signing_key(settings.secret)
        self.api = VendorApi(http, "webhook", settings.url, classify=_classify)

    def find(self, contact: ContactSnapshot) -> str | None:
        return contact.record_id  # the receiver owns its records; we only know what it told us

    def deliver(self, request: DeliveryRequest) -> DeliveryResult:
        body = json.dumps(event_payload(request), ensure_ascii=False, separators=(",", ":"), default=_iso).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": request.idempotency_key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.key, request.idempotency_key, timestamp, body),
        }
        response = self.api.request("POST", "", content=body, headers=headers)   # the URL exactly as configured
        reply = json_or_none(response) if response.content else None
        reply = reply if isinstance(reply, dict) else {}
        return DeliveryResult(
            contact_record_id=crm_id(reply.get("record_id")) or request.contact.record_id,
            interaction_record_id=crm_id(reply.get("interaction_record_id")),
            record_url=_web_page(reply.get("record_url")),
            api_calls=1,
        )


def _classify(response: httpx.Response, what: str) -> PermanentError | None:
    if response.status_code == 410:
        # Standard Webhooks: 410 Gone means the receiver wants no more deliveries to this endpoint.
        return PermanentError("endpoint_gone", f"{what}: HTTP 410: the receiver disabled this endpoint", status=410)
    return None


def _contact(contact: ContactSnapshot) -> dict[str, Any]:
    data = asdict(contact)
    data["id"] = data.pop("contact_id")
    data["emails"], data["phones"] = list(contact.emails), list(contact.phones)
    return data


def _interaction(interaction: InteractionSnapshot) -> dict[str, Any]:
    data = asdict(interaction)
    data["id"] = data.pop("interaction_id")
    data["transcript"] = [dict(message) for message in interaction.transcript]
    data["tags"] = list(interaction.tags)
    return data


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _web_page(value: Any) -> str | None:
    """The receiver's record page, if it is one: it becomes the "open in CRM" link of Jivo's agent window, where a
    `javascript:` or `data:` URL would run in the agent's browser."""
    url = str(value) if value not in (None, "") else None
    return url if url is not None and urlsplit(url.strip()).scheme.lower() in ("http", "https") else None
