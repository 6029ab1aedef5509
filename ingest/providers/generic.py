"""A generic JSON webhook: for senders without a module of their own, and the pipeline's own tests.

Authenticates by a bearer token (`Authorization: Bearer …` or `X-Webhook-Token`) and/or a URL secret. The body is a
JSON object; `email`, `phone`, `name` and `id` describe the person, `type` names the event.
"""
from __future__ import annotations

from typing import Any

from pydantic import SecretStr, model_validator

from crm_sync.model import CanonicalRecord, Interaction, InteractionKind, Person, ProviderIdentity
from ingest.providers.base import (
    AuthenticationFailed, ParseError, Provider, RawRequest, bearer_credentials, secrets_equal,
)
from ingest.settings import SourceSettings


class GenericSettings(SourceSettings):
    token: SecretStr | None = None

    @model_validator(mode="after")
    def _has_a_credential(self) -> "GenericSettings":
        if self.token is None and self.url_secret is None:
            raise ValueError("a generic source needs token or url_secret (sources are closed, never open)")
        return self


class GenericJSONProvider(Provider):
    name = "generic"
    settings_model = GenericSettings
    methods = frozenset({"POST", "GET"})
    secret_headers = frozenset({"x-webhook-token"})

    def authenticate(self, request: RawRequest, source: GenericSettings) -> None:
        if source.token is None:
            return  # the URL secret, already checked by the route, is the credential
        given = request.header("X-Webhook-Token") or _bearer_token(request.header("Authorization"))
        if not secrets_equal(given, source.token.get_secret_value()):
            raise AuthenticationFailed("missing or wrong bearer token")

    def dedup_key(self, request: RawRequest) -> str:
        delivery_id = request.header("Idempotency-Key") or request.header("webhook-id")
        return f"id:{delivery_id}" if delivery_id else super().dedup_key(request)

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        body = request.json_object() if request.method == "POST" else dict(request.query())
        event_type = _text(body, "type") or _text(body, "event") or "event"
        person = Person(
            name=_text(body, "name"),
            emails=body.get("email") or body.get("emails"),
            phones=body.get("phone") or body.get("phones"),
            identities=[ProviderIdentity(kind="generic.id", value=_text(body, "id"))] if body.get("id") else [],
        )
        interaction = Interaction(
            kind=_kind(body.get("kind")),
            provider=self.name,
            conversation_id=_text(body, "conversation_id"),
            external_id=_text(body, "event_id"),
            subject=_text(body, "subject"),
        )
        return [CanonicalRecord(event_type=event_type, person=person, interaction=interaction)]

    @classmethod
    def starter_source(cls, token: str) -> dict[str, str]:
        return {"provider": cls.name, "token": token}

    @classmethod
    def setup_instructions(cls, url: str, source: GenericSettings) -> str:
        if source.token is None:
            return f"POST JSON to {url}"
        return f"POST JSON to {url} with header Authorization: Bearer {source.token.get_secret_value()}"


def _text(body: dict[str, Any], key: str) -> str | None:
    """The key's text (a number as written); refused if it is an object, a list or true/false: printing one as text
    would store `{'a': 1}` as a name or an id."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ParseError(f"{key} must be text or a number, not {type(value).__name__}")
    return str(value)


def _kind(value: Any) -> InteractionKind:
    try:
        return InteractionKind(value or "note")
    except ValueError:
        raise ParseError(f"unknown kind {value!r}; one of {', '.join(k.value for k in InteractionKind)}") from None


def _bearer_token(authorization: str) -> str:
    """The token of `Bearer <token>`, or a bare token as it is."""
    if " " not in authorization.strip():
        return authorization.strip()
    return bearer_credentials(authorization) or ""
