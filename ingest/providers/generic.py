"""A generic JSON webhook: for senders without a module of their own, and the pipeline's own tests.

Authenticates by a bearer token (`Authorization: Bearer …` or `X-Webhook-Token`) and/or a URL secret. The body is a
JSON object (a GET's query parameters); `email`, `phone`, `name` and `id` describe the person, `type` names the event.
A request naming no person and no conversation_id or event_id (which join it to the contact they belong to) is
ignored, not made into a contact nobody could ever find again.
"""
from __future__ import annotations

from typing import Any

from pydantic import SecretStr, model_validator

from crm_sync.model import CanonicalRecord, Interaction, InteractionKind, Person, ProviderIdentity
from ingest.providers.base import (
    AuthenticationFailed, IgnoreEvent, ParseError, Provider, RawRequest, bearer_credentials, json_type_name,
    secrets_equal,
)
from ingest.settings import SourceSettings


# Without any of these the contact store has nothing to find the event's person by, now or later: recording it
# would make an anonymous contact of its own for every such request (a probe, a typo, junk in a query string).
NOBODY_NAMED = ("no person in the request: none of email, emails, phone, phones, name or id, and no conversation_id "
                "or event_id to attach it to; acknowledged, recorded nowhere")


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
        person = _person(body)
        interaction = Interaction(
            kind=_kind(body),
            provider=self.name,
            conversation_id=_text(body, "conversation_id"),
            external_id=_text(body, "event_id"),
            subject=_text(body, "subject"),
        )
        if person.is_empty and not (interaction.conversation_id or interaction.external_id):
            raise IgnoreEvent(NOBODY_NAMED)
        return [CanonicalRecord(event_type=event_type, person=person, interaction=interaction)]

    @classmethod
    def starter_source(cls, token: str) -> dict[str, str]:
        return {"provider": cls.name, "token": token}

    @classmethod
    def setup_instructions(cls, url: str, source: GenericSettings) -> str:
        if source.token is None:
            return f"POST JSON to {url}"
        return f"POST JSON to {url} with header Authorization: Bearer {source.token.get_secret_value()}"


def _person(body: dict[str, Any]) -> Person:
    person_id = _text(body, "id")
    return Person(
        name=_text(body, "name"),
        emails=body.get("email") or body.get("emails"),
        phones=body.get("phone") or body.get("phones"),
        identities=[ProviderIdentity(kind="generic.id", value=person_id)] if person_id else [],
    )


def _text(body: dict[str, Any], key: str) -> str | None:
    """The key's text (a number as written), None when blank; refused if it is an object, an array or true/false:
    printing one as text would store `{'a': 1}` as a name or an id."""
    value = body.get(key)
    if value is None or isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ParseError(f"{key} must be text or a number, not {json_type_name(value)}")
    return str(value)


def _kind(body: dict[str, Any]) -> InteractionKind:
    value = _text(body, "kind")
    if value is None:
        return InteractionKind.NOTE
    try:
        return InteractionKind(value)
    except ValueError:
        known = ", ".join(kind.value for kind in InteractionKind)
        # repr quotes it and escapes what a sender may have put in it (line breaks, control characters)
        raise ParseError(f"unknown kind {value[:60]!r}; one of {known}") from None


def _bearer_token(authorization: str) -> str:
    """The token of `Bearer <token>`, or a bare token as it is."""
    if " " not in authorization.strip():
        return authorization.strip()
    return bearer_credentials(authorization) or ""
