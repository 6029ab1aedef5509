"""What a provider's synchronous reply may look at: the stored event, the request, and our own store."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from ingest.events import StoredEvent
from ingest.providers.base import RawRequest
from ingest.settings import Settings, SourceSettings


@dataclass(frozen=True)
class ReplyContext:
    event: StoredEvent
    request: RawRequest
    source: SourceSettings
    sessions: sessionmaker[Session]   # for reads only: each statement may be its own transaction
    settings: Settings
