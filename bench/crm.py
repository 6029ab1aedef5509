"""The fake HubSpot of the test suite (`tests/fakes/hubspot.py`: a real HTTP server on loopback, the vendor's shapes,
switchable faults), with its record lookups indexed so that it stays cheap with thousands of contacts, and the
questions a benchmark asks of it: which person's note arrived when, and how many calls it took.

The test fake finds a contact by a property by scanning every contact, several times per upserted contact: fine for a
test, quadratic over a benchmark run, and the fake shares the machine's cores with the pipeline it measures.
"""
from __future__ import annotations

from typing import Any

from tests.fakes import hubspot
from tests.fakes.base import FakeRequest, FakeResponse

TOKEN = hubspot.TOKEN


class IndexedHubSpot(hubspot.HubSpotFake):
    """HubSpotFake whose lookups by email and by unique property go through an index instead of a scan."""

    def __init__(self) -> None:
        super().__init__()
        self._index: dict[tuple[str, str], str] = {}   # (property, value as matched) -> record id

    # --- the index --------------------------------------------------------------------------------------------------

    @staticmethod
    def _key(name: str, value: str) -> tuple[str, str]:
        return name, value.lower() if name == "email" else value

    def _indexed(self) -> set[str]:
        return {"email"} | self.unique_properties

    def _reindex(self, record_id: str) -> None:
        record = self.contacts.get(record_id)
        if record is None:
            return
        for name in self._indexed():
            value = record["properties"].get(name)
            if value:
                self._index[self._key(name, str(value))] = record_id

    def _by_property(self, name: str, value: str) -> dict[str, Any] | None:
        if name not in self._indexed():
            return super()._by_property(name, value)
        key = self._key(name, value)
        record = self.contacts.get(self._index.get(key, ""))
        if record is None:
            return None
        stored = record["properties"].get(name)
        # A record that changed its value since it was indexed no longer holds it; the fake's uniqueness checks
        # guarantee that no other record holds it either.
        return record if stored is not None and self._key(name, str(stored)) == key else None

    # --- writes keep it current -------------------------------------------------------------------------------------

    def _create_contact(self, properties: dict[str, str], created: float | None = None) -> str:
        record_id = super()._create_contact(properties, created)
        self._reindex(record_id)
        return record_id

    def _upsert(self, request: FakeRequest) -> FakeResponse:
        response = super()._upsert(request)
        if response.status == 200:
            for result in response.body["results"]:
                self._reindex(result["id"])
        return response

    def _patch_contact(self, request: FakeRequest) -> FakeResponse:
        response = super()._patch_contact(request)
        if response.status == 200:
            self._reindex(request.params["id"])
        return response

    # --- what the benchmark reads -------------------------------------------------------------------------------

    def first_note_by_email(self) -> dict[str, float]:
        """{email of the note's contact: when (time.monotonic()) the first note about that person arrived}."""
        with self.lock:
            arrivals: dict[str, float] = {}
            for note in self.notes.values():
                for record_id in note["contacts"]:
                    email = (self.contacts.get(record_id, {}).get("properties", {}).get("email") or "").lower()
                    if email and (email not in arrivals or note["created"] < arrivals[email]):
                        arrivals[email] = note["created"]
            return arrivals

    def calls_made(self) -> int:
        return len(self.calls)
