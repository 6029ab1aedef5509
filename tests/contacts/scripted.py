"""A provider test double whose payload is the canonical records themselves (a JSON list of CanonicalRecord).

It lets a test say exactly what "a provider" reported — any identities, conversation states, transcripts — and still
go through the real event store and `process_event`. Sources name it by dotted path, as a private integration would.
"""
from __future__ import annotations

import os

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from crm_sync.model import CanonicalRecord
from ingest.providers.base import ParseError, Provider, RawRequest
from ingest.settings import SourceSettings

SCRIPTED = "tests.contacts.scripted:ScriptedProvider"
BROKEN = "tests.contacts.scripted:BrokenProvider"
KILLER = "tests.contacts.scripted:KillerProvider"
FLAKY = "tests.contacts.scripted:FlakyDatabaseProvider"


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


class KillerProvider(ScriptedProvider):
    """Stands for an event that takes its worker down (the OOM killer, a crash in a C extension, the hard time
    limit): a payload that mentions "poison" ends the process on the spot, before any cleanup."""

    name = "killer"

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        if b"poison" in request.body:
            os._exit(137)
        return super().parse(request)


class FlakyDatabaseProvider(ScriptedProvider):
    """Stands for an event whose processing meets a transient database error (connection lost, statement timeout):
    a payload that mentions "flaky" raises one, every time."""

    name = "flaky"

    def parse(self, request: RawRequest) -> list[CanonicalRecord]:
        if b"flaky" in request.body:
            raise OperationalError("SELECT 1", None, ConnectionError("server closed the connection unexpectedly"))
        return super().parse(request)
