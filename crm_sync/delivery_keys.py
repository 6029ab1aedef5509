"""The idempotency key of a delivery, `<destination>:i<interaction id>:r<revision>`: built by planning, read back by a
CRM module that looks for what an earlier revision of the same interaction wrote."""
from __future__ import annotations

import re

_KEY = re.compile(r"^(?P<stem>.+:i\d+:r)(?P<revision>\d+)$")


def idempotency_key(destination: str, interaction_id: int, revision: int) -> str:
    """The same for every attempt and replay of one revision, so a CRM write can always find its earlier self."""
    return f"{destination}:i{interaction_id}:r{revision}"


def earlier_revision_keys(key: str) -> list[str]:
    """The keys of the same interaction's earlier revisions, newest first ([] for a key of another shape)."""
    match = _KEY.match(key)
    return [f"{match['stem']}{n}" for n in range(int(match["revision"]) - 1, 0, -1)] if match else []
