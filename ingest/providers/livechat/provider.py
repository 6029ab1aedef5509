"""The LiveChat provider: settings, authentication, dedup keys and parsing for v3 and legacy (v2) webhooks.

v3 webhooks prove themselves with the `secret_key` inside the JSON body (there is no signature header); legacy ones
with HTTP Basic credentials that LiveChat takes from the `user:password@` part of the webhook URL. Which proof a
request needs depends on what its body is, and a request that proves nothing is never stored.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import SecretStr, field_validator, model_validator

from crm_sync.model import CanonicalRecord
from ingest.providers.base import AuthenticationFailed, ParseError, Provider, RawRequest, secrets_equal
from ingest.providers.livechat.dedup import legacy_key, v3_key
from ingest.providers.livechat.legacy import parse_legacy
from ingest.providers.livechat.v3 import parse_v3
from ingest.settings import SourceSettings

V3_ACTIONS = ("incoming_chat", "incoming_event", "chat_deactivated", "chat_transferred", "thread_tagged",
              "customer_session_fields_updated")
LEGACY_EVENTS = ("chat_started", "chat_ended", "chat_changed", "visitor_queued", "ticket_created")
_WRITTEN_SECRET_KEY = re.compile(r'"secret_key"\s*:\s*"((?:[^"\\]|\\.){1,1000})"')


class LiveChatSettings(SourceSettings):
    secret_key: SecretStr | None = None   # v3: the "Secret key" of the app's Chat webhooks
    basic_auth: SecretStr | None = None   # legacy v2: "user:password" put in the webhook URL

    @field_validator("secret_key")
    @classmethod
    def _secret_key_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("secret_key is empty; remove it or paste the Secret key of your LiveChat webhooks")
        return value

    @field_validator("basic_auth")
    @classmethod
    def _basic_auth_is_user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, colon, password = value.get_secret_value().partition(":")
            if not (user and colon and password):
                raise ValueError('basic_auth must be "user:password" with both parts non-empty')
        return value

    @model_validator(mode="after")
    def _has_a_credential(self) -> "LiveChatSettings":
        if self.secret_key is None and self.basic_auth is None:
            raise ValueError("a livechat source needs secret_key (v3 webhooks) and/or basic_auth (legacy webhooks); "
                             "sources are closed, never open")
        return self


# v3 bodies carry the webhook's secret_key; legacy ones may carry it too, and an agent's API access `token`.
BODY_CREDENTIALS = ("secret_key", "token")


class LiveChatProvider(Provider):
    name = "livechat"
    settings_model = LiveChatSettings
    methods = frozenset({"POST"})
    secret_headers = frozenset({"authorization"})

    def authenticate(self, request: RawRequest, source: LiveChatSettings) -> None:
        body = _json_object_or_none(request)
        if body is not None and "action" in body:
            if not _secret_key_matches(request, body, source):
                raise AuthenticationFailed("v3 webhook without this source's secret_key in its body"
                                           if source.secret_key else "v3 webhook, but the source has no secret_key")
        elif body is not None and "event_type" in body:
            if not _basic_auth_matches(request, source):
                raise AuthenticationFailed("legacy webhook without this source's Basic credentials"
                                           if source.basic_auth else "legacy webhook, but the source has no basic_auth")
        elif not (_secret_key_matches(request, body, source) or _basic_auth_matches(request, source)):
            raise AuthenticationFailed("body is not a LiveChat webhook and the request carries no credentials")

    def credentials_in(self, request: RawRequest) -> list[str]:
        body = _json_object_or_none(request)
        if body is None:
            return [secret_key] if (secret_key := _secret_key_in(request, None)) else []
        return [value for key in BODY_CREDENTIALS if isinstance(value := body.get(key), str) and value]

    def dedup_key(self, request: RawRequest) -> str:
        body = _json_object_or_none(request)
        if body is not None and "action" in body:
            return v3_key(body)
        if body is not None and "event_type" in body:
            return legacy_key(body)
        return super().dedup_key(request)

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        body = request.json_object()
        if "action" in body:
            return parse_v3(body)
        if "event_type" in body:
            return parse_legacy(body)
        raise ParseError("not a LiveChat webhook: the body has neither `action` (v3) nor `event_type` (legacy v2)")

    @classmethod
    def starter_source(cls, token: str) -> dict[str, str]:
        return {"provider": cls.name, "secret_key": token}

    @classmethod
    def setup_instructions(cls, url: str, source: LiveChatSettings) -> str:
        parts = []
        if source.secret_key is not None:
            parts.append(
                f"v3: in the Developer Console, your app > Chat webhooks (or Configuration API register_webhook, "
                f"type license): Webhook URL = {url}, Secret key = {source.secret_key.get_secret_value()}, "
                f"one webhook per action: {', '.join(V3_ACTIONS)}; then install the app on your licence")
        if source.basic_auth is not None:
            parts.append(
                f"legacy v2: Agent App > Settings > Integrations > Webhooks: Target URL = "
                f"{url_with_credentials(url, source.basic_auth.get_secret_value())}, events {', '.join(LEGACY_EVENTS)} "
                "with every data type (chat, visitor, pre_chat_survey; ticket for ticket_created)")
        return "; ".join(parts)


def url_with_credentials(url: str, basic_auth: str) -> str:
    """The URL with `user:password@` in it, escaped so that any character in the password survives."""
    user, _, password = basic_auth.partition(":")
    split = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{split.netloc}"
    return urlunsplit(split._replace(netloc=netloc))


def _json_object_or_none(request: RawRequest) -> dict[str, Any] | None:
    try:
        return request.json_object()
    except ParseError:
        return None


def _secret_key_matches(request: RawRequest, body: dict[str, Any] | None, source: LiveChatSettings) -> bool:
    given = _secret_key_in(request, body)
    if source.secret_key is None or given is None:
        return False
    return secrets_equal(given, source.secret_key.get_secret_value())


def _secret_key_in(request: RawRequest, body: dict[str, Any] | None) -> str | None:
    """The body's secret_key; also read from the text of a body that is not valid JSON (cut short, say), so that a
    request proving itself is stored and replayable even when it cannot be parsed."""
    if body is not None:
        given = body.get("secret_key")
        return given if isinstance(given, str) else None
    written = _WRITTEN_SECRET_KEY.search(request.body.decode("utf-8", errors="replace"))
    if written is None:
        return None
    try:
        return json.loads(f'"{written.group(1)}"')
    except ValueError:
        return None


def _basic_auth_matches(request: RawRequest, source: LiveChatSettings) -> bool:
    if source.basic_auth is None:
        return False
    scheme, _, token = request.header("Authorization").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return secrets_equal(given, source.basic_auth.get_secret_value().encode("utf-8"))
