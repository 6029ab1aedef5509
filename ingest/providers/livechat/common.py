"""Small pieces both webhook generations (v3 and legacy v2) use."""
from __future__ import annotations

from typing import Any

from crm_sync.model import Agent

PROVIDER = "livechat"


def agent_by_id(agent_id: str | None, name: str | None = None) -> Agent | None:
    """LiveChat identifies an agent by the agent's e-mail address."""
    if not agent_id:
        return None
    return Agent(id=agent_id, name=name, email=agent_id if "@" in agent_id else None)


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Leave out what LiveChat did not say, so a record shows only known facts."""
    return {key: value for key, value in values.items() if value not in (None, "", [], {})}
