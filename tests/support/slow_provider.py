"""A provider for tests that holds the worker inside `parse`, so a test can kill the worker mid-task.

Configured as `provider = "tests.support.slow_provider:SlowProvider"` (the registry's dotted-path form). Each call
to `parse` appends a line to `<marker_dir>/started` (marker_dir comes in the body); it then waits for `<marker_dir>/release` (or 60 s).
"""
from __future__ import annotations

import time
from pathlib import Path

from crm_sync.model import CanonicalRecord, Interaction, InteractionKind, Person
from ingest.providers.generic import GenericJSONProvider

MAX_HOLD_SECONDS = 60


class SlowProvider(GenericJSONProvider):
    name = "slow"

    def parse(self, request) -> list[CanonicalRecord]:
        body = request.json_object()
        marker_dir = Path(body["marker_dir"])
        with open(marker_dir / "started", "a") as started:
            started.write("parse\n")
        deadline = time.monotonic() + MAX_HOLD_SECONDS
        while not (marker_dir / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return [CanonicalRecord(event_type="slow", person=Person(emails=[body.get("email", "")]),
                                interaction=Interaction(kind=InteractionKind.NOTE, provider="slow"))]
