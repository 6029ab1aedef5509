"""A provider test double whose payload is the canonical records themselves (a JSON list of CanonicalRecord).

It lets a test say exactly what "a provider" reported — any identities, conversation states, transcripts — and still
go through the real event store and `process_event`. Sources name it by dotted path, as a private integration would.
"""
from __future__ import annotations

from pydantic import ValidationError

from crm_sync.model import CanonicalRecord
from ingest.providers.base import ParseError, Provider, RawRequest
from ingest.settings import SourceSettings

SCRIPTED = "tests.contacts.scripted:ScriptedProvider"
BROKEN = "tests.contacts.scripted:BrokenProvider"


class ScriptedProvider(Provider):
    name = "scripted"
    settings_model = SourceSettings

    def authenticate(self, request: RawRequest, source: SourceSettings) -> None:
        return  # test sources are reached through the event store, never over HTTP

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        items = request.json()
        if not isinstance(items, list):
            raise ParseError("a scripted payload is a JSON list of canonical records")
        try:
            return [CanonicalRecord.model_validate(item) for item in items]
        except ValidationError as exc:
            raise ParseError(str(exc)) from None


class BrokenProvider(ScriptedProvider):
    """A provider module with a bug: its parser raises something no provider is meant to raise."""

    name = "broken"

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        raise ZeroDivisionError("a bug in the provider's parser")
